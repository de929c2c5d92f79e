"""``modic inspect``: human table, --json, UID overrides and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modic.cli import main
from helpers.io import OTHER_STUDY_UID, volume, write


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    root = tmp_path / "study"
    write(
        root / "loc",
        "t2",
        1,
        vol=volume((16, 16, 3)),
        description="localizer",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
    )
    write(root / "t1", "t1", 3)
    write(root / "t2", "t2", 4)
    write(root / "stir", "stir", 5)
    (root / "notes.txt").write_text("not dicom")
    return root


def test_table_lists_series_and_choice(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", str(study)])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    header = next(line for line in lines if line.strip().startswith("#"))
    for column in ("Description", "Plane", "Weighting", "Slices", "Matrix", "Spacing (mm)", "Decision"):
        assert column in header
    row = next(line for line in lines if "t1_tse_sag" in line)
    assert "sagittal" in row and " T1 " in row and "20x24" in row and "0.8x0.8x4" in row and "accepted T1" in row
    assert "rejected: localizer (ImageType LOCALIZER)" in out
    assert "rejected: weighting STIR" in out
    assert "Chosen T1: series 3 't1_tse_sag'" in out
    assert "Chosen T2: series 4 't2_tse_sag'" in out
    assert "skipped 1 not_dicom" in out


def test_json_output(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["inspect", str(study), "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    [entry] = document["studies"]
    assert [s["series_number"] for s in entry["series"]] == [1, 3, 4, 5]
    by_number = {s["series_number"]: s for s in entry["series"]}
    assert by_number[3]["status"] == "accepted" and by_number[3]["role"] == "t1"
    assert by_number[5]["status"] == "rejected" and by_number[5]["weighting"] == "STIR"
    assert entry["chosen"]["t1"] == by_number[3]["series_uid"]
    assert entry["chosen"]["t2"] == by_number[4]["series_uid"]
    assert any(d["event"] == "choice" for d in entry["decisions"])
    assert document["scan"]["skipped_counts"] == {"not_dicom": 1}


def test_uid_override_and_wrong_uid(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["inspect", str(study), "--json"])
    series = json.loads(capsys.readouterr().out)["studies"][0]["series"]
    stir = next(s["series_uid"] for s in series if s["series_number"] == 5)

    assert main(["inspect", str(study), "--json", "--t2-uid", stir]) == 0
    assert json.loads(capsys.readouterr().out)["studies"][0]["chosen"]["t2"] == stir

    code = main(["inspect", str(study), "--t1-uid", "1.2.3.4.5"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("modic: error: --t1-uid '1.2.3.4.5' is not a series") and stir in err
    assert err.count("\n") == 1


def test_no_t1_or_t2_exits_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "stir", 5)

    code = main(["inspect", str(tmp_path)])

    captured = capsys.readouterr()
    assert code == 1
    assert "rejected: weighting STIR" in captured.out
    assert captured.err.startswith("modic: error: no usable sagittal T1 or T2 series")
    assert captured.err.count("\n") == 1


def test_several_studies_are_all_listed(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(study / "other", "t2", 8, study_uid=OTHER_STUDY_UID)

    code = main(["inspect", str(study), "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert OTHER_STUDY_UID in [s["study_uid"] for s in document["studies"]]


def test_missing_folder_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
