"""Cross-study batched segmentation (the GPU path's batching) equals per-study segmentation, on the CPU in fp32."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.batch import make_study

from modic.io.formats import write_nifti
from modic.io.slice_pair import load_slice_pair
from modic.io.study import load_study
from modic.io.volume import Volume
from modic.pipeline import Models, analyze_images, segmentation_inputs
from modic.settings import load_settings


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("batched_segmentation")
    config = load_settings()
    models = Models.load(config, device="cpu")
    models.segmenter.batch_size = 8  # studies have 5 slices: batches straddle them
    studies = [load_study(make_study(seed, base / str(seed)) / "dicom") for seed in (31, 32)]
    return SimpleNamespace(base=base, config=config, models=models, studies=studies)


def _cropped(volume: Volume, rows: int) -> Volume:
    """The volume without its last ``rows`` rows: same padded network size, different grid."""
    return Volume(array=volume.array[:, : volume.shape[1] - rows].copy(), affine=volume.affine, info=dict(volume.info))


def test_logits_on_grids_equals_one_stack_at_a_time(setup: SimpleNamespace) -> None:
    segmenter = setup.models.segmenter
    volumes = [v for images in setup.studies for v in segmentation_inputs(images)]
    volumes += [_cropped(volumes[0], 3), _cropped(volumes[1], 20)]  # same padded size as the rest / another one
    stacks, grids = zip(*(segmenter.network_input(volume) for volume in volumes))
    multiple = segmenter.settings.pad_multiple
    padded = {tuple(-(-n // multiple) * multiple for n in s.shape[1:]) for s in stacks}
    sizes = {tuple(s.shape[1:]) for s in stacks}
    assert len(sizes) > len(padded) >= 2, "the test needs sizes that share batches and sizes that do not"
    batched = segmenter.probabilities_on_grids(stacks, grids)
    assert len(batched) == len(stacks)
    for stack, grid, together in zip(stacks, grids, batched):
        alone = segmenter.probabilities_on_grid(stack, grid)
        assert together.shape == alone.shape == (4, *stack.shape)
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
        assert torch.allclose(together.sum(dim=0), torch.ones(stack.shape), atol=1e-4)


def test_batch_size_does_not_change_the_result(setup: SimpleNamespace) -> None:
    segmenter = setup.models.segmenter
    stacks, grids = zip(*(segmenter.network_input(v) for v in segmentation_inputs(setup.studies[0])))
    reference = segmenter.probabilities_on_grids(stacks, grids)
    previous = segmenter.batch_size
    try:
        segmenter.batch_size = 64
        for one, other in zip(reference, segmenter.probabilities_on_grids(stacks, grids)):
            torch.testing.assert_close(one, other, rtol=0, atol=1e-5)
    finally:
        segmenter.batch_size = previous


def test_precomputed_probabilities_give_the_same_analysis(setup: SimpleNamespace) -> None:
    images = setup.studies[0]
    segmenter = setup.models.segmenter
    inputs = [segmenter.network_input(v) for v in segmentation_inputs(images)]
    on_grid = segmenter.probabilities_on_grids([stack for stack, _ in inputs], [grid for _, grid in inputs])
    probabilities = [segmenter.to_volume_grid(p, grid) for p, (_, grid) in zip(on_grid, inputs)]
    batched = analyze_images(images, models=setup.models, config=setup.config, probabilities=probabilities)
    reference = analyze_images(images, models=setup.models, config=setup.config)
    assert [(g.level, g.modic_type) for g in batched.levels] == [(g.level, g.modic_type) for g in reference.levels]
    for ours, theirs in zip(batched.levels, reference.levels):
        assert [e.modic_type for e in ours.endplates] == [e.modic_type for e in theirs.endplates]
        np.testing.assert_allclose([e.confidence for e in ours.endplates], [e.confidence for e in theirs.endplates],
                                   atol=1e-4)
    np.testing.assert_array_equal(batched.anatomy.semantic, reference.anatomy.semantic)


def test_slice_pair_takes_precomputed_probabilities(setup: SimpleNamespace, tmp_path: Path) -> None:
    images = setup.studies[1]
    assert images.t1 is not None and images.t2_native is not None
    middle = images.t1.shape[2] // 2
    files = {}
    for role, volume in (("t1", images.t1), ("t2", images.t2_native)):
        files[role] = tmp_path / f"{role}.nii.gz"
        write_nifti(Volume(array=volume.array[:, :, middle : middle + 1].copy(), affine=volume.affine,
                           info=dict(volume.info)), files[role])
    pair = load_slice_pair(t1=files["t1"], t2=files["t2"])
    inputs = segmentation_inputs(pair)
    assert [v.shape for v in inputs] == [pair.t1.shape, pair.t2_native.shape]
    probabilities = [setup.models.segmenter.predict_probabilities(v) for v in inputs]
    given = analyze_images(pair, models=setup.models, config=setup.config, probabilities=probabilities)
    computed = analyze_images(pair, models=setup.models, config=setup.config)
    assert [(g.level, g.modic_type) for g in given.levels] == [(g.level, g.modic_type) for g in computed.levels]
    assert given.images.decisions[-1]["event"] == "register"
    with pytest.raises(Exception, match="probability map"):
        analyze_images(pair, models=setup.models, config=setup.config, probabilities=probabilities[:1])
