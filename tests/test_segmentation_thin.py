"""A thin-slice segmentation model: volumes of several slices at most ``thin_slice_max_spacing_mm`` apart go to it.

Tiny networks with different random weights stand in for the two bundles, so
which one segmented a volume shows in its probabilities.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from modic.bundles import build_network
from modic.errors import ConfigError
from modic.io.volume import Volume
from modic.pipeline import Models, study_models_info
from modic.report.dicom_seg import model_id, segmentation_used
from modic.segmentation.bundle import PreprocessSettings, save_bundle
from modic.segmentation.infer import SegmentationModel
from modic.settings import load_settings

NETWORK_DEF = {"_target_": "UNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
               "channels": [4, 8], "strides": [2], "num_res_units": 0}
SETTINGS = PreprocessSettings(spacing_mm=1.0, percentile_lower=0.5, percentile_upper=99.5, pad_multiple=8)


def tiny_model(seed: int, **options: object) -> SegmentationModel:
    torch.manual_seed(seed)
    return SegmentationModel(build_network(NETWORK_DEF), settings=SETTINGS, **options)


def sagittal_volume(*, slices: int, spacing_mm: float, seed: int = 0) -> Volume:
    """``slices`` sagittal slices of 40 x 40 mm (axes R, A, S), ``spacing_mm`` apart."""
    array = np.random.default_rng(seed).random((slices, 40, 40)).astype(np.float32)
    return Volume(array=array, affine=np.diag([spacing_mm, 1.0, 1.0, 1.0]))


@pytest.fixture(scope="module")
def models() -> tuple[SegmentationModel, SegmentationModel, SegmentationModel]:
    """(main alone, thin alone, main with thin for slices at most 2 mm apart)."""
    main, thin = tiny_model(1), tiny_model(2)
    return main, thin, tiny_model(1, thin_slice_model=thin, thin_slice_max_spacing_mm=2.0)


@pytest.mark.parametrize(("slices", "spacing_mm", "thin_expected"),
                         [(6, 1.0, True), (6, 2.0, True), (6, 4.0, False), (1, 1.0, False)])
def test_thin_multi_slice_volumes_go_to_the_thin_model(
    models: tuple[SegmentationModel, SegmentationModel, SegmentationModel],
    slices: int, spacing_mm: float, thin_expected: bool,
) -> None:
    main, thin, routed = models
    volume = sagittal_volume(slices=slices, spacing_mm=spacing_mm)
    expected = (thin if thin_expected else main).predict_probabilities(volume)
    other = (main if thin_expected else thin).predict_probabilities(volume)
    result = routed.predict_probabilities(volume)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert np.abs(result - other).max() > 1e-3


def test_shared_forward_passes_keep_each_stack_with_its_model(
    models: tuple[SegmentationModel, SegmentationModel, SegmentationModel],
) -> None:
    """A batch mixing thin and thick studies gives each stack what its own model gives it alone."""
    main, thin, routed = models
    volumes = [sagittal_volume(slices=5, spacing_mm=4.0, seed=1), sagittal_volume(slices=7, spacing_mm=1.0, seed=2),
               sagittal_volume(slices=5, spacing_mm=4.5, seed=3), sagittal_volume(slices=6, spacing_mm=1.2, seed=4)]
    inputs = [routed.network_input(volume) for volume in volumes]
    batched = routed.probabilities_on_grids([stack for stack, _ in inputs], [grid for _, grid in inputs])
    for (stack, grid), result, owner in zip(inputs, batched, (main, thin, main, thin)):
        torch.testing.assert_close(result, owner.probabilities_on_grid(stack, grid), atol=1e-5, rtol=1e-4)


def test_the_thin_model_applies_its_own_calibration(
    models: tuple[SegmentationModel, SegmentationModel, SegmentationModel],
) -> None:
    main, _, _ = models
    weighted_thin = copy.deepcopy(main)
    weighted_thin.background_offset = float(np.log(5.0))
    routed = tiny_model(1, thin_slice_model=weighted_thin, thin_slice_max_spacing_mm=2.0)
    thin_volume, thick_volume = sagittal_volume(slices=6, spacing_mm=1.0), sagittal_volume(slices=6, spacing_mm=4.0)
    assert routed.predict_probabilities(thin_volume)[0].mean() > main.predict_probabilities(thin_volume)[0].mean() + 0.05
    np.testing.assert_allclose(routed.predict_probabilities(thick_volume), main.predict_probabilities(thick_volume),
                               atol=1e-6)


def test_a_thin_model_with_other_preprocessing_is_refused() -> None:
    torch.manual_seed(2)
    other = SegmentationModel(build_network(NETWORK_DEF), settings=PreprocessSettings(
        spacing_mm=0.8, percentile_lower=0.5, percentile_upper=99.5, pad_multiple=8))
    with pytest.raises(ConfigError, match="thin-slice segmentation model's preprocessing"):
        tiny_model(1, thin_slice_model=other, thin_slice_max_spacing_mm=2.0)


def test_stacks_and_grids_must_pair_up(models: tuple[SegmentationModel, SegmentationModel, SegmentationModel]) -> None:
    _, _, routed = models
    stack, grid = routed.network_input(sagittal_volume(slices=3, spacing_mm=1.0))
    with pytest.raises(ValueError, match="2 stacks but 1 grids"):
        routed.probabilities_on_grids([stack, stack], [grid])


def _bundle(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_bundle(path, network=build_network(NETWORK_DEF), network_def=NETWORK_DEF, settings=SETTINGS,
                       metadata={"version": f"seed {seed}", "network_data_format": {"inputs": {}, "outputs": {}}})


def test_models_load_the_thin_bundle_unless_a_bundle_is_given(tmp_path: Path) -> None:
    config = load_settings({"segmentation": {"bundle": str(_bundle(tmp_path / "main", 1)),
                                             "thin_slice_bundle": str(_bundle(tmp_path / "thin", 2)),
                                             "thin_slice_max_spacing_mm": 1.5}})
    loaded = Models.load(config, device="cpu")
    assert loaded.segmenter.thin_slice_model is not None
    assert loaded.segmenter.thin_slice_max_spacing_mm == 1.5
    assert loaded.info["segmentation"]["bundle"] == "main"
    assert loaded.info["segmentation"]["thin_slice"]["bundle"] == "thin"
    assert loaded.info["segmentation"]["thin_slice"]["max_spacing_mm"] == 1.5
    explicit = Models.load(config, device="cpu", bundle=tmp_path / "main")
    assert explicit.segmenter.thin_slice_model is None and "thin_slice" not in explicit.info["segmentation"]
    config = config.merged({"segmentation": {"thin_slice_bundle": None}})
    assert Models.load(config, device="cpu").segmenter.thin_slice_model is None


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("thin_slice_bundle", "", "a non-empty text or null"),
    ("thin_slice_max_spacing_mm", 0, "a number between 0.1 and 10"),
])
def test_thin_slice_settings_are_checked(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"'segmentation.{key}' is {value!r}; expected {expected}"):
        load_settings({"segmentation": {key: value}})


def test_each_study_records_whether_the_thin_bundle_segmented_it(tmp_path: Path) -> None:
    config = load_settings({"segmentation": {"bundle": str(_bundle(tmp_path / "main", 1)),
                                             "thin_slice_bundle": str(_bundle(tmp_path / "thin", 2)),
                                             "thin_slice_max_spacing_mm": 2.0}})
    loaded = Models.load(config, device="cpu")
    cases = {(6, 1.0): True, (6, 4.0): False, (1, 1.0): False}
    for (slices, spacing_mm), used in cases.items():
        volume = sagittal_volume(slices=slices, spacing_mm=spacing_mm)
        assert loaded.segmenter.uses_thin_slice_model(volume) is used
        info = study_models_info(loaded, volume)
        assert info["segmentation"]["thin_slice"]["used"] is used
        assert info["segmentation"]["bundle"] == "main" and info["segmentation"]["thin_slice"]["bundle"] == "thin"
    assert "used" not in loaded.info["segmentation"]["thin_slice"]
    alone = Models.load(config.merged({"segmentation": {"thin_slice_bundle": None}}), device="cpu")
    assert study_models_info(alone, sagittal_volume(slices=6, spacing_mm=1.0)) == alone.info


def test_dicom_outputs_name_the_bundle_that_segmented_the_study() -> None:
    """SEG and SR identify the segmentation model by the bundle actually used (device serial number)."""
    main = {"bundle": "spine_seg", "version": "0.1.0", "sha256": "a" * 64}
    thin = {"bundle": "spine_seg_thin", "version": "0.1.0", "sha256": "b" * 64, "max_spacing_mm": 2.0}
    for used, expected in ((True, "b" * 16), (False, "a" * 16)):
        analysis = SimpleNamespace(models={"segmentation": {**main, "thin_slice": {**thin, "used": used}}})
        assert model_id(analysis) == expected
        assert segmentation_used(analysis)["bundle"] == ("spine_seg_thin" if used else "spine_seg")
    assert model_id(SimpleNamespace(models={"segmentation": main})) == "a" * 16
