"""The 2.5D input of the thin-slice network: each sagittal slice read with its neighbours (``slice_context_mm``).

Inference (:func:`modic.preprocessing.sagittal.with_slice_context`), training samples
(:func:`modic.training.segmentation_data.extract_slab`), the bundle field, the config check,
and the start from a one-slice network (:func:`modic.training.segmentation.widen_input_channels`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers.segmentation import SMOKE_CONFIG, synthetic_smoke_config

from modic.bundles import build_network
from modic.config import load_yaml
from modic.errors import ConfigError, ModelError
from modic.io.volume import Volume
from modic.preprocessing.sagittal import with_slice_context
from modic.segmentation.bundle import PreprocessSettings, load_bundle, save_bundle
from modic.segmentation.infer import SegmentationModel
from modic.training.segmentation import train, widen_input_channels
from modic.training.segmentation_data import SegCase, SlabSpec, extract_slab

SETTINGS = PreprocessSettings(spacing_mm=1.0, percentile_lower=0.5, percentile_upper=99.5, pad_multiple=8)


def _network_def(in_channels: int) -> dict[str, Any]:
    return {"_target_": "UNet", "spatial_dims": 2, "in_channels": in_channels, "out_channels": 4,
            "channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 2, "norm": "instance"}


def _ramp_stack(slices: int = 6) -> torch.Tensor:
    """Slice i filled with the value i, so every interpolated position reads as its own value."""
    return torch.arange(slices, dtype=torch.float32)[:, None, None].expand(slices, 4, 5).clone()


def test_neighbours_lie_context_mm_away_interpolated_and_clamped_at_the_edges() -> None:
    stack = _ramp_stack()
    on_grid = with_slice_context(stack, spacing_mm=1.0, context_mm=2.0)
    assert on_grid.shape == (6, 3, 4, 5)
    assert torch.equal(on_grid[:, 1], stack)
    assert on_grid[:, 0, 0, 0].tolist() == [0, 0, 0, 1, 2, 3]
    assert on_grid[:, 2, 0, 0].tolist() == [2, 3, 4, 5, 5, 5]
    between = with_slice_context(stack, spacing_mm=0.8, context_mm=2.0)  # 2.5 slices away
    assert between[:, 2, 0, 0].tolist() == pytest.approx([2.5, 3.5, 4.5, 5, 5, 5])
    assert between[:, 0, 0, 0].tolist() == pytest.approx([0, 0, 0, 0.5, 1.5, 2.5])


@pytest.mark.parametrize(("spacing", "context"), [(0.0, 2.0), (1.0, 0.0), (1.0, -1.0)])
def test_slice_context_needs_positive_distances(spacing: float, context: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        with_slice_context(_ramp_stack(), spacing_mm=spacing, context_mm=context)


def test_training_sample_channels_are_the_slabs_either_side() -> None:
    image = _ramp_stack(8).numpy() * 10.0
    label = np.zeros(image.shape, dtype=np.uint8)
    label[3] = 2
    case = SegCase("ramp", image, label, np.ones(4, dtype=bool), "synthetic", np.diag([2.0, 1.0, 1.0, 1.0]))
    sample = extract_slab(case, SlabSpec(case=0, centre=3, thickness=1), slice_context_mm=3.0)  # 1.5 slices
    assert sample["image"].shape == (3, 4, 5)
    assert sample["image"][:, 0, 0].tolist() == pytest.approx([15.0, 30.0, 45.0])
    assert sample["label"].shape == (1, 4, 5) and int(sample["label"].max()) == 2
    thick = extract_slab(case, SlabSpec(case=0, centre=3, thickness=3), slice_context_mm=4.0)  # 2 slices
    assert thick["image"][:, 0, 0].tolist() == pytest.approx([10.0, 30.0, 50.0])  # slabs 0-2, 2-4, 4-6
    alone = extract_slab(case, SlabSpec(case=0, centre=3, thickness=1))
    assert alone["image"].shape == (1, 4, 5) and float(alone["image"][0, 0, 0]) == 30.0


def test_a_widened_network_starts_as_the_one_slice_network_reading_a_slab() -> None:
    torch.manual_seed(0)
    one = build_network(_network_def(1)).eval()
    three = build_network(_network_def(3)).eval()
    three.load_state_dict(widen_input_channels(one.state_dict(), three.state_dict()))
    context = with_slice_context(torch.rand(5, 32, 32), spacing_mm=1.0, context_mm=2.0)
    slab = 0.25 * context[:, 0] + 0.5 * context[:, 1] + 0.25 * context[:, 2]
    with torch.no_grad():
        assert torch.allclose(three(context), one(slab[:, None]), atol=1e-5)
        assert not torch.allclose(three(context), one(context[:, 1:2]), atol=1e-3)
    for key, value in three.state_dict().items():  # only the input convolutions were widened
        original = one.state_dict()[key]
        assert torch.equal(value, original) or (value.shape[1] == 3 and torch.equal(value[:, 1:2], 0.5 * original))


def test_inference_feeds_the_neighbours_to_a_context_network() -> None:
    """A model with slice context gives the probabilities of its network on the stacked neighbours."""
    torch.manual_seed(1)
    network = build_network(_network_def(3)).eval()
    model = SegmentationModel(network, settings=SETTINGS, slice_context_mm=2.0)
    array = np.random.default_rng(0).normal(100, 20, (6, 32, 40)).astype(np.float32)
    volume = Volume(array, np.diag([1.0, 1.0, 1.0, 1.0]), {"source": "test"})
    stack, grid = model.network_input(volume)
    probabilities = model.probabilities_on_grid(stack, grid)
    with torch.no_grad():
        context = with_slice_context(stack, spacing_mm=1.0, context_mm=2.0)
        expected = torch.softmax(network(context), dim=1).movedim(1, 0)
    assert probabilities.shape == expected.shape
    assert torch.allclose(probabilities, expected, atol=1e-5)
    alone = SegmentationModel(build_network(_network_def(1)).eval(), settings=SETTINGS)
    assert alone.probabilities_on_grid(stack, grid).shape == expected.shape


def test_bundle_records_the_context_and_rejects_a_mismatch(tmp_path: Path) -> None:
    network = build_network(_network_def(3))
    path = save_bundle(tmp_path / "b", network=network, network_def=_network_def(3), settings=SETTINGS,
                       metadata={"version": "test"}, slice_context_mm=2.0)
    assert load_bundle(path).slice_context_mm == 2.0
    inference = path / "configs" / "inference.json"
    data = json.loads(inference.read_text())
    data["modic"]["slice_context_mm"] = 0
    inference.write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"in_channels 3 but modic.slice_context_mm 0 gives the network 1 channel"):
        load_bundle(path)
    data["modic"]["slice_context_mm"] = "2 mm"
    inference.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="slice_context_mm '2 mm'; it must be a number of millimetres"):
        load_bundle(path)


def _smoke_network_def(in_channels: int) -> dict[str, Any]:
    """The smoke config's network with ``in_channels`` input channels."""
    return {**load_yaml(SMOKE_CONFIG)["network_def"], "in_channels": in_channels}


def test_config_channels_must_match_the_context(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"in_channels is 1 but data.slice_context_mm 2 makes samples of 3"):
        synthetic_smoke_config(tmp_path, data__slice_context_mm=2.0)
    with pytest.raises(ConfigError, match=r"in_channels is 3 but data.slice_context_mm 0 makes samples of 1"):
        synthetic_smoke_config(tmp_path, network_def=_smoke_network_def(3))


def test_training_with_context_exports_a_bundle_that_reads_neighbours(tmp_path: Path) -> None:
    config = synthetic_smoke_config(tmp_path, data__slice_context_mm=2.0, network_def=_smoke_network_def(3),
                                    training__epochs=1)
    bundle_dir = tmp_path / "bundle"
    train(config, output_dir=tmp_path / "run", device="cpu", export_bundle=bundle_dir)
    loaded = load_bundle(bundle_dir)
    assert loaded.slice_context_mm == 2.0
    image_format = loaded.metadata["network_data_format"]["inputs"]["image"]
    assert image_format["num_channels"] == 3 and set(image_format["channel_def"]) == {"0", "1", "2"}
    probabilities = SegmentationModel.from_bundle(str(bundle_dir)).predict_probabilities(
        Volume(np.random.default_rng(0).normal(100, 20, (4, 40, 48)).astype(np.float32), np.eye(4), {})
    )
    assert probabilities.shape == (4, 4, 40, 48)
    assert np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)
