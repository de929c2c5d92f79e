"""The GPU path gives the CPU path's results (float16 mixed precision against float32), to tolerance.

Runs only where CUDA is available (``-m gpu``); everywhere else it is skipped.
The shipped network is used, since a tiny untrained one would agree by
predicting background everywhere.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.batch import levels_of, make_cohort, summary

from modic.batch import BatchOptions, run_batch
from modic.io.study import load_study
from modic.pipeline import Models, analyze_images, segmentation_inputs
from modic.settings import load_settings

GPU = "cuda"

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("gpu")
    return SimpleNamespace(base=base, root=base / "root", keys=make_cohort(base, (71, 72, 73)))


def test_probabilities_and_grades_match_the_cpu(cohort: SimpleNamespace) -> None:
    config = load_settings()
    cpu, gpu = Models.load(config, device="cpu"), Models.load(config, device=GPU)
    images = load_study(cohort.base / "generated" / "71" / "dicom")
    for volume in segmentation_inputs(images):
        on_cpu = cpu.segmenter.predict_probabilities(volume)
        on_gpu = gpu.segmenter.predict_probabilities(volume)
        assert on_gpu.shape == on_cpu.shape
        assert np.abs(on_gpu - on_cpu).max() < 0.1
        agreement = float(np.mean(on_gpu.argmax(axis=0) == on_cpu.argmax(axis=0)))
        assert agreement > 0.995, f"GPU and CPU labels agree on only {agreement:.4f} of the voxels"
    reference = analyze_images(images, models=cpu, config=config)
    ours = analyze_images(images, models=gpu, config=config)
    assert [(g.level, g.modic_type) for g in ours.levels] == [(g.level, g.modic_type) for g in reference.levels]
    for mine, theirs in zip(ours.levels, reference.levels):
        assert [e.modic_type for e in mine.endplates] == [e.modic_type for e in theirs.endplates]
        np.testing.assert_allclose([e.confidence for e in mine.endplates],
                                   [e.confidence for e in theirs.endplates], atol=0.02)


def test_batch_on_the_gpu_matches_the_cpu_batch(cohort: SimpleNamespace) -> None:
    runs = {}
    for name, device in (("cpu", "cpu"), ("gpu", GPU)):
        out = cohort.base / f"batch-{name}"
        result = run_batch(BatchOptions(root=cohort.root, out=out, workers=2, device=device, dicom=False,
                                        progress_bar=False))
        assert result.exit_code == 0 and result.counts["ok"] == len(cohort.keys)
        runs[name] = SimpleNamespace(out=out, result=result)
    assert runs["gpu"].result.pipeline == "cross-study", "on a GPU the batch segments across studies"
    for key in cohort.keys:
        assert levels_of(runs["gpu"].out / key) == levels_of(runs["cpu"].out / key)
    gpu_rows = [(r["study_key"], r["endplate"], r["modic_type"]) for r in summary(runs["gpu"].out)]
    cpu_rows = [(r["study_key"], r["endplate"], r["modic_type"]) for r in summary(runs["cpu"].out)]
    assert sorted(gpu_rows) == sorted(cpu_rows)
    assert len(gpu_rows) == len(set(gpu_rows)), "each study and endplate appears once in the summary"
    assert {key for key, _, _ in gpu_rows} == set(cohort.keys)
