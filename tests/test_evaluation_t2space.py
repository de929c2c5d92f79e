"""``modic evaluate spider`` on the spider_t2space layout: the 3D path on T2 alone, presence per level."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path


PATIENTS = ("7", "22")


def subset(shared: Path, root: Path) -> Path:
    """A spider_t2space folder holding two real patients (images linked, CSVs cut to them)."""
    source = shared / "spider_t2space"
    (root / "images").mkdir(parents=True)
    for patient in PATIENTS:
        (root / "images" / f"{patient}.nii.gz").symlink_to(source / "images" / f"{patient}.nii.gz")
    for name, key in (("cases.csv", "patient"), ("gradings.csv", "Patient")):
        with (source / name).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if row[key] in PATIENTS]
            fields = reader.fieldnames
        with (root / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return root


def test_t2space_layout_is_graded_for_presence_with_probabilities(shared_datasets: Path, tmp_path: Path):
    data = subset(shared_datasets, tmp_path / "t2space")
    out = tmp_path / "m.json"
    run = subprocess.run(
        [sys.executable, "-m", "modic", "evaluate", "spider", "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr
    metrics = json.loads(out.read_text())
    assert metrics["layout"] == "spider_t2space"
    assert metrics["n_patients"] == 2 and metrics["n_levels"] == 6 and metrics["failed"] == []
    assert metrics["type_kappa"] is None and metrics["per_type_recall"] is None
    assert set(metrics["confusion_matrix"]["0"]) == {"0", "changed", "failed"}
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == 6
    for key in ("presence_balanced_accuracy", "presence_sensitivity", "presence_specificity", "presence_kappa",
                "patient_sensitivity", "patient_specificity"):
        assert key in metrics
    for patient in metrics["patients"]:
        assert patient["predicted"] == {}  # T2 alone: no type
        assert set(patient["changed"]) == {"L3-L4", "L4-L5", "L5-S1"}
        for level, probability in patient["probability"].items():
            assert 0.0 <= probability <= 1.0
    # printed per patient: truth, prediction and probability
    assert "patient 7: L3-L4 truth 0 pred" in run.stdout and "(p 0." in run.stdout
    assert "types: not determined (T2 only)" in run.stdout
