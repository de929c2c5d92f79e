"""Saving and loading segmentation MONAI bundles (modic.segmentation.bundle, modic.bundles)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from modic.bundles import build_network, read_bundle, sha256_bytes
from modic.errors import ConfigError, ModelError
from modic.segmentation.bundle import PreprocessSettings, load_bundle, save_bundle

NETWORK_DEF: dict[str, Any] = {
    "_target_": "UNet",
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 4,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 0,
}
SETTINGS = PreprocessSettings(spacing_mm=2.0, percentile_lower=1.0, percentile_upper=99.0, pad_multiple=8)


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    network = build_network(NETWORK_DEF)
    return save_bundle(
        tmp_path / "bundle", network=network, network_def=NETWORK_DEF, settings=SETTINGS,
        metadata={"version": "test", "network_data_format": {"inputs": {}, "outputs": {}}},
    )


def test_save_and_load_round_trip(bundle: Path) -> None:
    torch.manual_seed(0)
    original = build_network(NETWORK_DEF)
    loaded = load_bundle(bundle)
    assert loaded.settings == SETTINGS
    assert loaded.path == bundle
    assert loaded.metadata["version"] == "test"
    assert loaded.metadata["modic_model_sha256"] == sha256_bytes((bundle / "models" / "model.pt").read_bytes())
    assert not loaded.network.training
    state = loaded.network.state_dict()
    assert state.keys() == original.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in original.state_dict().items())
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    assert inference["network_def"] == NETWORK_DEF
    assert inference["modic"]["spacing_mm"] == 2.0


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def _edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_corrupt_weights_are_a_checksum_error(bundle: Path) -> None:
    _flip_bytes(bundle / "models" / "model.pt")
    with pytest.raises(ModelError, match=r"model\.pt.*corrupt \(checksum mismatch\)"):
        load_bundle(bundle)


def test_corrupt_weights_without_a_checksum_cannot_be_loaded(bundle: Path) -> None:
    """Without the recorded checksum, damage is still a ModelError (from torch.load), not a torch exception."""
    weights = bundle / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:300])
    _edit_json(bundle / "configs" / "metadata.json", lambda d: d.pop("modic_model_sha256"))
    with pytest.raises(ModelError, match=r"model\.pt.*cannot be loaded"):
        load_bundle(bundle)


def test_missing_or_broken_metadata_is_a_model_error(bundle: Path) -> None:
    metadata = bundle / "configs" / "metadata.json"
    metadata.write_text("{not json")
    with pytest.raises(ModelError, match=r"metadata\.json.*not JSON"):
        load_bundle(bundle)
    metadata.write_text("[1, 2]")
    with pytest.raises(ModelError, match=r"metadata\.json.*JSON list"):
        load_bundle(bundle)
    metadata.unlink()
    with pytest.raises(ModelError, match=r"metadata\.json.*missing"):
        load_bundle(bundle)


def test_missing_bundle_folder_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        load_bundle(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["modic"].pop("spacing_mm"), "preprocessing settings"),
        (lambda d: d["modic"].update(spacing_mm="thin"), "preprocessing settings"),
        (lambda d: d.pop("modic"), "'modic' settings"),
        (lambda d: d["network_def"].update(channels=[8, 16]), r"model\.pt.*cannot be loaded"),
        (lambda d: d["network_def"].pop("_target_"), "_target_"),
    ],
    ids=["no-spacing", "bad-spacing", "no-modic", "other-architecture", "no-target"],
)
def test_inconsistent_inference_config_is_a_model_error(bundle: Path, change: Any, message: str) -> None:
    _edit_json(bundle / "configs" / "inference.json", change)
    with pytest.raises(ModelError, match=message):
        load_bundle(bundle)


def test_read_bundle_returns_raw_settings(bundle: Path) -> None:
    raw = read_bundle(bundle)
    assert raw.settings == {"spacing_mm": 2.0, "percentile_lower": 1.0, "percentile_upper": 99.0, "pad_multiple": 8}


def test_build_network_rejects_bad_definitions() -> None:
    with pytest.raises(ConfigError, match="_target_"):
        build_network({"spatial_dims": 2})
    with pytest.raises(ConfigError, match="NoSuchNet"):
        build_network({"_target_": "NoSuchNet"})
    with pytest.raises(ConfigError, match="torch module"):
        build_network({"_target_": "collections.OrderedDict"})


@pytest.mark.parametrize(
    "name", ["spine_seg", "spine_seg_thin", "modic_grade", "modic_patch", "modic_presence", "modic_orientation"]
)
def test_every_shipped_bundle_has_a_model_card(name: str) -> None:
    """Each shipped model's card states provenance, citations and measured figures, and the research-use notice."""
    from modic.resources import models_dir

    card = (models_dir() / name / "MODEL_CARD.md").read_text(encoding="utf-8")
    for heading in ("Research use only", "## Training", "## Measured metrics",
                    "## Data provenance and citations"):
        assert heading in card, f"{name} model card lacks {heading!r}"
    licences = (models_dir() / name / "docs" / "data_license.txt").read_text(encoding="utf-8")
    assert "Research use only" in licences and "data/README.md" in licences
    bundle_readme = (models_dir() / name / "docs" / "README.md").read_text(encoding="utf-8")
    assert "../MODEL_CARD.md" in bundle_readme, f"{name}/docs/README.md does not point to the card"


def _set_background_weight(bundle: Path, value: Any) -> None:
    path = bundle / "configs" / "inference.json"
    inference = json.loads(path.read_text())
    inference["modic"]["background_weight"] = value
    path.write_text(json.dumps(inference))


def test_background_weight_defaults_to_one_and_is_read(bundle: Path) -> None:
    assert load_bundle(bundle).background_weight == 1.0
    _set_background_weight(bundle, 2.5)
    assert load_bundle(bundle).background_weight == 2.5


@pytest.mark.parametrize("value", [0, -1.0, "3", True, None])
def test_invalid_background_weight_is_a_model_error(bundle: Path, value: Any) -> None:
    _set_background_weight(bundle, value)
    with pytest.raises(ModelError, match=r"background_weight .* must be a positive number"):
        load_bundle(bundle)


def test_background_weight_shifts_decisions_as_reweighting_does(bundle: Path) -> None:
    """The weight added as a logit offset equals reweighting the plain probabilities, and it shrinks structures."""
    import numpy as np

    from modic.io.volume import Volume
    from modic.segmentation.infer import SegmentationModel, reweight_background

    rng = np.random.default_rng(0)
    volume = Volume(rng.normal(100, 30, size=(3, 40, 36)).astype(np.float32), np.diag([4.0, 2.0, 2.0, 1.0]))
    loaded = load_bundle(bundle)
    plain = SegmentationModel(loaded.network, settings=loaded.settings).predict_probabilities(volume)
    weighted = SegmentationModel(loaded.network, settings=loaded.settings, background_weight=3.0)
    shifted = weighted.predict_probabilities(volume)
    np.testing.assert_allclose(shifted, reweight_background(plain, 3.0), atol=1e-5)
    assert np.allclose(shifted.sum(axis=0), 1.0, atol=1e-5)
    assert (shifted.argmax(axis=0) == 0).sum() > (plain.argmax(axis=0) == 0).sum()


def _set_slice_sigma(bundle: Path, value: Any, *, key: str = "slice_sigma_mm") -> None:
    path = bundle / "configs" / "inference.json"
    inference = json.loads(path.read_text())
    inference["modic"][key] = value
    path.write_text(json.dumps(inference))


def test_slice_sigma_defaults_to_none_and_is_read(bundle: Path) -> None:
    loaded = load_bundle(bundle)
    assert (loaded.slice_sigma_mm, loaded.slice_sigma_max_spacing_mm) == (0.0, None)
    _set_slice_sigma(bundle, 3)
    _set_slice_sigma(bundle, 2, key="slice_sigma_max_spacing_mm")
    loaded = load_bundle(bundle)
    assert (loaded.slice_sigma_mm, loaded.slice_sigma_max_spacing_mm) == (3.0, 2.0)


@pytest.mark.parametrize("value", [-0.5, "3", True, None, float("inf")])
def test_invalid_slice_sigma_is_a_model_error(bundle: Path, value: Any) -> None:
    _set_slice_sigma(bundle, value)
    with pytest.raises(ModelError, match=r"slice_sigma_mm .* must be a number of millimetres, 0 or more"):
        load_bundle(bundle)


@pytest.mark.parametrize("value", [0, -2.0, "2", False, float("inf")])
def test_invalid_slice_smoothing_limit_is_a_model_error(bundle: Path, value: Any) -> None:
    _set_slice_sigma(bundle, value, key="slice_sigma_max_spacing_mm")
    with pytest.raises(ModelError, match=r"slice_sigma_max_spacing_mm .* must be a positive number of millimetres"):
        load_bundle(bundle)


def test_slice_smoothing_is_a_gaussian_in_mm_across_sagittal_slices(bundle: Path) -> None:
    """Smoothing follows the slice spacing and the slice axis, whatever the array order; a single slice is kept."""
    import numpy as np
    from scipy import ndimage

    from modic.io.volume import Volume
    from modic.segmentation.infer import SegmentationModel

    _set_slice_sigma(bundle, 6.0)
    loaded = load_bundle(bundle)
    plain_model = SegmentationModel(loaded.network, settings=loaded.settings)
    smoothing_model = SegmentationModel.from_bundle(str(bundle))
    assert smoothing_model.slice_sigma_mm == 6.0
    rng = np.random.default_rng(1)
    sagittal_first = Volume(rng.normal(100, 30, size=(7, 40, 36)).astype(np.float32), np.diag([4.0, 2.0, 2.0, 1.0]))
    plain = plain_model.predict_probabilities(sagittal_first)
    smoothed = smoothing_model.predict_probabilities(sagittal_first)
    expected = ndimage.gaussian_filter1d(plain, 6.0 / 4.0, axis=1, mode="nearest")
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)
    assert np.allclose(smoothed.sum(axis=0), 1.0, atol=1e-5)
    assert np.abs(smoothed - plain).max() > 0.01

    sagittal_last = Volume(np.moveaxis(sagittal_first.array, 0, 2).copy(), sagittal_first.affine[:, [1, 2, 0, 3]])
    np.testing.assert_allclose(
        smoothing_model.predict_probabilities(sagittal_last), np.moveaxis(smoothed, 1, 3), atol=1e-5
    )

    one_slice = Volume(sagittal_first.array[3:4].copy(), sagittal_first.affine)
    np.testing.assert_allclose(
        smoothing_model.predict_probabilities(one_slice), plain_model.predict_probabilities(one_slice), atol=1e-6
    )

    _set_slice_sigma(bundle, 3.9, key="slice_sigma_max_spacing_mm")
    thin_only = SegmentationModel.from_bundle(str(bundle))
    np.testing.assert_allclose(thin_only.predict_probabilities(sagittal_first), plain, atol=1e-6)
    _set_slice_sigma(bundle, 4.0, key="slice_sigma_max_spacing_mm")
    np.testing.assert_allclose(SegmentationModel.from_bundle(str(bundle)).predict_probabilities(sagittal_first),
                               smoothed, atol=1e-6)
