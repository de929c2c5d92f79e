"""``modic batch COHORT.csv`` with NIfTI pairs: outputs, failures without identifiers, resume by the manifest."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from helpers.batch import make_study, manifest, study_folders, summary, write_csv

from modic.cli import main

OPTIONS = ["--device", "cpu", "--no-dicom"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("batch_csv")
    make_study(81, base / "data" / "P1")
    make_study(82, base / "data" / "P2")
    listing = write_csv(
        base / "cohort.csv",
        [
            {"id": "P1", "t1": "data/P1/nifti/t1.nii.gz", "t2": "data/P1/nifti/t2.nii.gz", "age": "54"},
            {"id": "P2", "t1": "data/P2/nifti/t1.nii.gz", "t2": "", "age": "61"},
            {"id": "P3", "t1": "data/P3/nifti/t1.nii.gz", "t2": "", "age": "47"},
        ],
        ["id", "t1", "t2", "age"],
    )
    out = base / "out"
    first = main(["-q", "batch", str(listing), "-o", str(out), "--keep-identifiers", *OPTIONS])
    first_records = manifest(out)
    second = main(["-q", "batch", str(listing), "-o", str(out), *OPTIONS])
    return SimpleNamespace(base=base, out=out, first=first, second=second, first_records=first_records,
                           second_records=manifest(out)[len(first_records):], summary=summary(out))


def test_nifti_pairs_are_analyzed_and_a_missing_file_fails(runs: SimpleNamespace) -> None:
    assert runs.first == 1
    by_line = {r["source"].split(":")[0]: r for r in runs.first_records}
    assert [by_line[f"csv line {n}"]["status"] for n in (2, 3, 4)] == ["ok", "ok", "failed"]
    ok = [by_line["csv line 2"]["key"], by_line["csv line 3"]["key"]]
    assert set(study_folders(runs.out)) == set(ok)
    assert by_line["csv line 4"]["key"] is None
    assert str(runs.base / "data" / "P3") in by_line["csv line 4"]["error"], "--keep-identifiers keeps paths"
    identifiers = by_line["csv line 2"]["identifiers"]
    assert identifiers["id"] == "P1" and identifiers["csv_line"] == 2
    assert identifiers["t1"] == str((runs.base / "data" / "P1" / "nifti" / "t1.nii.gz").resolve())


def test_rerun_skips_files_by_manifest_and_hides_identifiers(runs: SimpleNamespace) -> None:
    assert runs.second == 1
    statuses = {r["source"].split(":")[0]: r["status"] for r in runs.second_records}
    assert statuses == {"csv line 2": "skipped", "csv line 3": "skipped", "csv line 4": "failed"}
    failed = next(r for r in runs.second_records if r["status"] == "failed")
    assert failed["attempt"] == 2 and "identifiers" not in failed
    assert "<input>" in failed["error"] and str(runs.base) not in failed["error"]
    rows = [r for r in runs.summary if r["status"] == "failed"]
    assert len(rows) == 1 and rows[0]["study_key"] == "" and rows[0]["source"] == "csv line 4: t1 file(s)"
    assert str(runs.base) not in (runs.out / "summary.csv").read_text(encoding="utf-8")
