"""The Python API does what the command line does: analyze, write the full report, candidacy, grading of a
foreign segmentation without modic's network."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from helpers.bad_input import run_cli
from helpers.synthetic import PLANTED, SYNTH_CONFIG, planted_specs, write_synth_config
from modic import api
from modic.errors import OutputFolderError
from modic.synth import generate_study, write_study

REPO_ROOT = Path(__file__).resolve().parent.parent

VARYING = ("created", "timings")
"""Report keys that differ between two runs of the same analysis (clock readings)."""


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api_study")
    write_study(generate_study(seed=5, config="tiny", modic="L5 superior:1"), root / "input", formats=("dicom",))
    return root / "input" / "dicom"


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in VARYING}


def test_the_api_writes_the_files_modic_analyze_writes(
    dicom_study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, ["analyze", "-i", dicom_study, "-o", tmp_path / "cli", "--device", "cpu"])
    assert result.code == 0, result.err
    analysis = api.analyze_study(dicom_study, device="cpu")
    report = analysis.write(tmp_path / "api")
    cli_files, api_files = _files(tmp_path / "cli"), _files(tmp_path / "api")
    assert api_files == cli_files
    assert {"report.json", "levels.csv", "report.html", "seg.dcm", "sr.dcm", "segmentation.nii.gz"} <= set(api_files)
    cli_report = json.loads((tmp_path / "cli" / "report.json").read_text(encoding="utf-8"))
    assert _stable(report) == _stable(json.loads((tmp_path / "api" / "report.json").read_text(encoding="utf-8")))
    assert _stable(report) == _stable(cli_report)
    assert (tmp_path / "api" / "levels.csv").read_text() == (tmp_path / "cli" / "levels.csv").read_text()


def test_write_takes_the_options_of_modic_analyze(dicom_study: Path, tmp_path: Path) -> None:
    analysis = api.analyze_study(dicom_study, device="cpu", method="rules")
    analysis.write(tmp_path / "out", dicom=False)
    assert "seg.dcm" not in _files(tmp_path / "out") and "report.json" in _files(tmp_path / "out")
    with pytest.raises(OutputFolderError, match="is not empty; pass another output folder, or overwrite=True"):
        analysis.write(tmp_path / "out")
    clinical = REPO_ROOT / "configs" / "clinical_template.yaml"
    candidacy = api.check_candidacy(analysis, clinical=clinical)
    report = analysis.write(tmp_path / "out", overwrite=True, candidacy=candidacy.to_dict())
    assert report["candidacy"]["verdict"] == candidacy.verdict
    assert "seg.dcm" in _files(tmp_path / "out")
    with pytest.raises(OutputFolderError, match="lies inside the input"):
        analysis.write(dicom_study / "results")


def test_a_cohort_runs_from_the_api(dicom_study: Path, tmp_path: Path) -> None:
    result = api.analyze_cohort(dicom_study.parent, tmp_path / "cohort", device="cpu", method="rules", progress_bar=False)
    assert result.exit_code == 0 and result.counts.get("ok") == 1
    with (tmp_path / "cohort" / "summary.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) >= 1


FOREIGN = {1: 141, 2: 192, 3: 150}
"""modic's semantic classes (body, disc, S1) recoded as another tool would label them."""

GRADE_FOREIGN = """
import json, sys
from pathlib import Path
import numpy as np
from modic.api import grade_images, grade_segmentation
from modic.io.formats import read_volume, write_nifti
from modic.synth import generate_study, to_study_images, write_study

config_path, changes, seed, out, foreign = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), {int(k): v for k, v in json.loads(sys.argv[5]).items()}
study = generate_study(seed=seed, config=config_path, modic=changes)
semantic = study.labels["semantic"]
recoded = np.zeros_like(semantic.array)
for ours, theirs in foreign.items():
    recoded[np.rint(semantic.array) == ours] = theirs
labels = semantic.with_array(recoded)
mapping = {foreign[1]: "vertebral_body", foreign[2]: "disc", foreign[3]: "s1", 77: "background"}
in_memory = grade_images(to_study_images(study), labels, mapping=mapping, source="test")
write_study(study, out / "study", formats=("nifti",))
write_nifti(labels, out / "foreign.nii.gz")
nifti = out / "study" / "nifti"
from_files = grade_segmentation(t1=nifti / "t1.nii.gz", t2=nifti / "t2.nii.gz", labels=out / "foreign.nii.gz", mapping=mapping)
from_files.write(out / "result")
grades = lambda a: {g.endplate: g.modic_type for level in a.levels for g in level.endplates}
print(json.dumps({"loaded": sorted(m for m in ("torch", "monai") if m in sys.modules),
                  "in_memory": grades(in_memory), "from_files": grades(from_files),
                  "models": from_files.models}))
"""


def test_a_foreign_label_map_is_graded_without_the_network(tmp_path: Path) -> None:
    """Grades of another tool's label map: the planted types found, the full report written, and torch (so any
    network) never imported."""
    seed, changes = PLANTED["kissing"]
    config_path = write_synth_config(tmp_path, SYNTH_CONFIG)
    done = subprocess.run(
        [sys.executable, "-c", GRADE_FOREIGN, str(config_path), json.dumps(planted_specs(changes)), str(seed),
         str(tmp_path), json.dumps(FOREIGN)],
        capture_output=True, text=True, timeout=240,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["loaded"] == []
    expected = {spec["endplate"]: spec["type"] for spec in planted_specs(changes)}
    for grades in (result["in_memory"], result["from_files"]):
        assert {k: v for k, v in grades.items() if v} == expected
        assert len(grades) >= 4
    assert result["models"]["segmentation"] == {"source": "label map 'foreign.nii.gz'"}
    assert result["models"]["classifier"]["method"] == "rules"
    report = json.loads((tmp_path / "result" / "report.json").read_text(encoding="utf-8"))
    schema = json.loads((REPO_ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)
    assert report["models"]["segmentation"]["source"] == "label map 'foreign.nii.gz'"
    assert (tmp_path / "result" / "report.html").is_file()


def test_a_label_mapping_with_an_unknown_class_is_refused(dicom_study: Path) -> None:
    from modic.errors import ConfigError

    with pytest.raises(ConfigError, match=r"label mapping names \['bone'\]; use background, vertebral_body, disc, s1"):
        api.grade_segmentation(dicom_study, labels=dicom_study, mapping={1: "bone"})


def test_probabilities_from_labels_one_hot_in_the_levels_stage_order() -> None:
    import numpy as np

    from modic.io.volume import Volume
    from modic.segmentation.probabilities import probabilities_from_labels

    array = np.array([[[0, 41, 92, 50, 2]]], dtype=np.float32)
    labels = Volume(array, np.eye(4))
    p = probabilities_from_labels(labels, {41: "vertebral_body", 92: "disc", 50: "s1"}, like=labels)
    assert p.shape == (4, 1, 1, 5) and p.dtype == np.float32
    assert p[:, 0, 0].argmax(axis=0).tolist() == [0, 1, 2, 3, 0]  # canal (2) unmapped: background
    assert np.all(p.sum(axis=0) == 1.0)
