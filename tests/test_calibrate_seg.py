"""``scripts/calibrate_seg.py``: the background weight is chosen on training cases only and stored in the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from modic.bundles import build_network
from modic.segmentation.bundle import PreprocessSettings, load_bundle, save_bundle
from helpers.segmentation import REPO_ROOT, SMOKE_CONFIG, write_lumbar_seg, write_spider_t2space

NETWORK_DEF = {"_target_": "UNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
               "channels": [4, 8], "strides": [2], "num_res_units": 0}


def test_calibration_uses_training_cases_and_writes_the_best_weight(tmp_path: Path) -> None:
    data = write_lumbar_seg(tmp_path / "lumbar_seg")
    config = yaml.safe_load(SMOKE_CONFIG.read_text())
    spider = write_spider_t2space(tmp_path / "spider", patients=("1", "2"))
    config["data"].update(lumbar_seg=str(data), validation_cases=["ivd_fake"], max_training_cases=None,
                          spider_t2space=str(spider), spider_t2space_validation=["2"])
    config_path = tmp_path / "seg.yaml"
    config_path.write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    bundle = save_bundle(
        tmp_path / "bundle", network=build_network(NETWORK_DEF), network_def=NETWORK_DEF,
        settings=PreprocessSettings(spacing_mm=1.0, percentile_lower=0.5, percentile_upper=99.5, pad_multiple=8),
        metadata={"version": "test", "network_data_format": {"inputs": {}, "outputs": {}}},
    )
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "calibrate_seg.py"), "--config", str(config_path),
         "--bundle", str(bundle), "--weights", "0.5", "1", "8", "--write"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2 lumbar_seg training cases and 1 spider_t2space training patients")
    assert "held out and not used: 1 and 1" in lines[0]
    rows = {float(line.split()[0]): float(line.split()[3]) for line in lines[2:5]}
    assert sorted(rows) == [0.5, 1.0, 8.0]
    best = max(rows, key=lambda w: rows[w])
    assert f"chosen background weight: {best:g}" in result.stdout
    assert load_bundle(bundle).background_weight == best
    stored = json.loads((bundle / "configs" / "inference.json").read_text())
    assert stored["network_def"] == NETWORK_DEF
