"""``scripts/interpolate_seg.py``: a weight-space blend of two bundles of one network, written as a bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modic.bundles import build_network
from modic.segmentation.bundle import PreprocessSettings, load_bundle, save_bundle
from helpers.segmentation import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "interpolate_seg.py"
NETWORK_DEF = {"_target_": "UNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
               "channels": [4, 8], "strides": [2], "num_res_units": 0}
SETTINGS = PreprocessSettings(spacing_mm=1.0, percentile_lower=0.5, percentile_upper=99.5, pad_multiple=8)


def tiny_bundle(path: Path, *, seed: int, network_def: dict = NETWORK_DEF) -> Path:
    torch.manual_seed(seed)
    return save_bundle(path, network=build_network(network_def), network_def=network_def, settings=SETTINGS,
                       metadata={"version": f"seed {seed}", "network_data_format": {"inputs": {}, "outputs": {}}})


def run_script(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)


def test_blend_is_the_weighted_mean_of_the_two_networks(tmp_path: Path) -> None:
    base, tuned = tiny_bundle(tmp_path / "base", seed=1), tiny_bundle(tmp_path / "tuned", seed=2)
    inference = json.loads((base / "configs" / "inference.json").read_text())
    inference["modic"]["background_weight"] = 4.0
    (base / "configs" / "inference.json").write_text(json.dumps(inference))
    out = tmp_path / "blend"
    result = run_script("--base", base, "--tuned", tuned, "--alpha", "0.25", "--out", out)
    assert result.returncode == 0, result.stderr
    start, end, blend = (load_bundle(p) for p in (base, tuned, out))
    start_weights, end_weights = start.network.state_dict(), end.network.state_dict()
    for name, value in blend.network.state_dict().items():
        torch.testing.assert_close(value, 0.75 * start_weights[name] + 0.25 * end_weights[name])
    assert not torch.equal(blend.network.state_dict()[name], start_weights[name])
    # The base bundle's calibration travels with the blend; the metadata says what was blended.
    assert blend.background_weight == 4.0
    assert blend.metadata["modic_weight_blend"] == {"base": str(base), "tuned": str(tuned), "alpha": 0.25}


@pytest.mark.parametrize("alpha", ["-0.1", "1.5"])
def test_alpha_outside_zero_to_one_is_refused(tmp_path: Path, alpha: str) -> None:
    base, tuned = tiny_bundle(tmp_path / "base", seed=1), tiny_bundle(tmp_path / "tuned", seed=2)
    result = run_script("--base", base, "--tuned", tuned, "--alpha", alpha, "--out", tmp_path / "blend")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: alpha must lie in [0, 1]; got {float(alpha)}"
    assert not (tmp_path / "blend").exists()


def test_bundles_of_different_networks_are_refused(tmp_path: Path) -> None:
    wider = {**NETWORK_DEF, "channels": [4, 16]}
    base, tuned = tiny_bundle(tmp_path / "base", seed=1), tiny_bundle(tmp_path / "tuned", seed=2, network_def=wider)
    result = run_script("--base", base, "--tuned", tuned, "--alpha", "0.5", "--out", tmp_path / "blend")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "has shape" in result.stderr
    assert not (tmp_path / "blend").exists()
