"""``modic batch`` end to end in this process: outputs, summary, manifest, failures, resume and --retry-failed.

One cohort goes through three runs (module fixtures, in order): the first run
(study A as exported, study B split over two folders, study C unusable: only
an axial series); a rerun, which skips A and B and tries C again; and, after
C's sagittal series are added and a new study E appears, a ``--retry-failed``
run, which runs C only.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.batch import (
    copy_series,
    key_of,
    level_rows,
    make_study,
    manifest,
    series_folder,
    study_folders,
    summary,
)

from modic.batch.summary import SUMMARY_COLUMNS
from modic.cli import main
from modic.report.tables import LEVEL_COLUMNS

OPTIONS = ["--device", "cpu", "--no-dicom"]


def _created(out: Path, key: str) -> str:
    return json.loads((out / key / "report.json").read_text(encoding="utf-8"))["created"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("batch_run")
    a = make_study(41, base / "generated" / "A")
    b = make_study(42, base / "generated" / "B")
    c = make_study(43, base / "generated" / "C", extra_series=("axial",))
    e = make_study(44, base / "generated" / "E")
    root = base / "root"
    for name in ("SAG_T1", "SAG_T2"):
        copy_series(series_folder(a, name), root / "a" / name)
    copy_series(series_folder(b, "SAG_T1"), root / "b_part1")
    copy_series(series_folder(b, "SAG_T2"), root / "elsewhere" / "b_part2")
    copy_series(series_folder(c, "AX_T2"), root / "c")
    keys = {name: key_of(study / "dicom") for name, study in (("A", a), ("B", b), ("C", c), ("E", e))}
    return SimpleNamespace(base=base, root=root, out=base / "out", generated={"A": a, "C": c, "E": e}, keys=keys)


@pytest.fixture(scope="module")
def first(cohort: SimpleNamespace) -> SimpleNamespace:
    code = main(["-q", "batch", str(cohort.root), "-o", str(cohort.out), *OPTIONS])
    keys = cohort.keys
    return SimpleNamespace(
        code=code,
        manifest=manifest(cohort.out),
        summary=summary(cohort.out),
        created={k: _created(cohort.out, keys[k]) for k in "AB"},
    )


@pytest.fixture(scope="module")
def second(first: SimpleNamespace, cohort: SimpleNamespace) -> SimpleNamespace:
    (cohort.out / "summary.csv").unlink()
    stale = cohort.out / ".modic-tmp-deadbeef-x1"
    stale.mkdir()
    (stale / "report.json").write_text("{}", encoding="utf-8")
    code = main(["-q", "batch", str(cohort.root), "-o", str(cohort.out), *OPTIONS])
    keys = cohort.keys
    return SimpleNamespace(
        code=code,
        manifest=manifest(cohort.out)[len(first.manifest):],
        summary=summary(cohort.out),
        created={k: _created(cohort.out, keys[k]) for k in "AB"},
        stale_left=stale.exists(),
    )


@pytest.fixture(scope="module")
def retried(second: SimpleNamespace, first: SimpleNamespace, cohort: SimpleNamespace) -> SimpleNamespace:
    for name in ("SAG_T1", "SAG_T2"):
        copy_series(series_folder(cohort.generated["C"], name), cohort.root / "c" / name)
        copy_series(series_folder(cohort.generated["E"], name), cohort.root / "e" / name)
    code = main(["-q", "batch", str(cohort.root), "-o", str(cohort.out), "--retry-failed", *OPTIONS])
    return SimpleNamespace(
        code=code,
        manifest=manifest(cohort.out)[len(first.manifest) + len(second.manifest):],
        summary=summary(cohort.out),
    )


def test_first_run_writes_every_study_and_records_the_failure(first: SimpleNamespace, cohort: SimpleNamespace) -> None:
    keys = cohort.keys
    assert first.code == 1, "a failed study makes the exit code 1"
    folders = study_folders(cohort.out)
    assert set(folders) == {keys["A"], keys["B"]}, "only finished studies have a folder; no temporaries remain"
    for key in (keys["A"], keys["B"]):
        names = {p.name for p in folders[key].iterdir()}
        assert {"report.json", "levels.csv", "report.html", "segmentation.nii.gz"} <= names
        assert not {"seg.dcm", "sr.dcm"} & names, "--no-dicom"
    by_key = {r["key"]: r for r in first.manifest}
    assert len(first.manifest) == 3 and set(by_key) == {keys["A"], keys["B"], keys["C"]}
    assert [by_key[keys[n]]["status"] for n in "ABC"] == ["ok", "ok", "failed"]
    failure = by_key[keys["C"]]
    assert "no usable sagittal T1 or T2 series" in failure["error"]
    assert by_key[keys["A"]]["error"] is None
    for record in first.manifest:
        assert record["attempt"] == 1 and record["device"] == "cpu" and record["worker"]
        assert set(record["timings"]) == {"read_s", "preprocess_s", "segment_s", "levels_s", "classify_s",
                                          "report_s", "total_s"}
    ok = by_key[keys["A"]]["timings"]
    assert ok["segment_s"] > 0 and ok["report_s"] > 0 and ok["total_s"] >= ok["segment_s"] + ok["report_s"]
    assert "2 folder(s)" in by_key[keys["B"]]["source"]


def test_manifest_and_summary_hold_no_identifiers(first: SimpleNamespace, cohort: SimpleNamespace) -> None:
    text = (cohort.out / "manifest.jsonl").read_text(encoding="utf-8") + (cohort.out / "summary.csv").read_text()
    assert str(cohort.base) not in text and "identifiers" not in text
    from modic.batch import discover

    for source in discover(cohort.root):
        assert source.index is not None and source.index.study_uid not in text


def test_summary_has_the_level_rows_of_every_study_and_the_failure(
    first: SimpleNamespace, cohort: SimpleNamespace
) -> None:
    keys = cohort.keys
    assert list(first.summary[0]) == list(SUMMARY_COLUMNS)
    for name in "AB":
        rows = [r for r in first.summary if r["study_key"] == keys[name]]
        expected = level_rows(cohort.out / keys[name])
        assert rows and len(rows) == len(expected)
        assert all(r["status"] == "ok" and r["error"] == "" for r in rows)
        assert [{c: r[c] for c in LEVEL_COLUMNS} for r in rows] == expected
    failed = [r for r in first.summary if r["study_key"] == keys["C"]]
    assert len(failed) == 1 and failed[0]["status"] == "failed"
    assert "no usable sagittal" in failed[0]["error"] and failed[0]["level"] == ""


def test_batch_output_equals_modic_analyze(first: SimpleNamespace, cohort: SimpleNamespace, tmp_path: Path) -> None:
    single = tmp_path / "single"
    assert main(["-q", "analyze", str(cohort.root / "a"), "-o", str(single), *OPTIONS]) == 0
    assert level_rows(single) == level_rows(cohort.out / cohort.keys["A"])


def test_rerun_skips_finished_studies_and_regenerates_the_summary(
    second: SimpleNamespace, first: SimpleNamespace, cohort: SimpleNamespace
) -> None:
    keys = cohort.keys
    assert second.code == 1, "C still fails"
    statuses = {r["key"]: (r["status"], r["attempt"]) for r in second.manifest}
    assert statuses == {keys["A"]: ("skipped", 1), keys["B"]: ("skipped", 1), keys["C"]: ("failed", 2)}
    assert second.created == first.created, "finished studies are not analysed again"
    assert second.summary == first.summary, "summary.csv is rebuilt from report.json files and the manifest"
    assert not second.stale_left, "temporaries of an interrupted run are removed"


def test_retry_failed_runs_only_the_failed_study(retried: SimpleNamespace, cohort: SimpleNamespace) -> None:
    keys = cohort.keys
    assert retried.code == 0
    statuses = {r["key"]: (r["status"], r["attempt"]) for r in retried.manifest}
    assert statuses == {keys["A"]: ("skipped", 1), keys["B"]: ("skipped", 1), keys["C"]: ("ok", 3)}
    assert keys["E"] not in study_folders(cohort.out), "--retry-failed leaves never-attempted studies alone"
    assert {r["study_key"] for r in retried.summary} == {keys["A"], keys["B"], keys["C"]}
    assert {r["status"] for r in retried.summary} == {"ok"}


def test_usage_errors_exit_2(cohort: SimpleNamespace, tmp_path: Path) -> None:
    assert main(["-q", "batch", str(cohort.root), "-o", str(cohort.root / "out")]) == 2
    assert main(["-q", "batch", str(cohort.root), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert main(["-q", "batch", str(cohort.root), "-o", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert main(["-q", "batch", str(tmp_path / "absent"), "-o", str(tmp_path / "o")]) == 2
    assert main(["-q", "batch", str(cohort.root), "-o", str(tmp_path / "o"), "--executor", "dask",
                 "--pipeline", "cross-study"]) == 2


def test_a_study_finished_meanwhile_by_another_worker_is_not_written_twice(
    first: SimpleNamespace, cohort: SimpleNamespace, tmp_path: Path
) -> None:
    from modic.batch.worker import BatchJob, _write
    from modic.io.study import load_study
    from modic.pipeline import Models, analyze_images
    from modic.settings import load_settings

    config = load_settings()
    analysis = analyze_images(load_study(cohort.root / "a"), models=Models.load(config, device="cpu"), config=config)
    job = BatchJob(out=tmp_path, config=config, device="cpu", dicom=False)
    assert _write(analysis, cohort.keys["A"], job) == "ok"
    created = _created(tmp_path, cohort.keys["A"])
    assert _write(analysis, cohort.keys["A"], job) == "skipped", "the second rename finds the folder complete"
    assert _created(tmp_path, cohort.keys["A"]) == created
    assert [p.name for p in tmp_path.iterdir()] == [cohort.keys["A"]], "the loser's temporary folder is removed"
