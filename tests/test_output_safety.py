"""Nothing lost, nothing left behind: ``--overwrite``, output places that cannot work, SIGTERM, stale temporaries.

Each test builds the situation with real files (and real processes and
signals where the situation is a signal) and checks what a user would see:
exit code, the one error line, which files exist afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.bad_input import assert_clean_failure, assert_no_temporaries, run_cli, snapshot
from helpers.batch import make_study

from modic import atomic
from modic.atomic import MARKER_NAME, TEMP_PREFIX, foreign_files, output_folder, remove_stale_temporaries, temp_prefix
from modic.errors import OutputError

pytestmark = pytest.mark.timeout(300)

REPORT_FILES = {"report.json", "levels.csv", "report.html", "seg.dcm", "sr.dcm", MARKER_NAME}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic DICOM study (T1 and T2 of 5 slices); never modify it."""
    return make_study(7, tmp_path_factory.mktemp("safety") / "study") / "dicom"


@pytest.fixture(scope="module")
def finished(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real ``modic analyze`` output folder; copy it before changing it."""
    out = tmp_path_factory.mktemp("finished") / "out"
    from modic.cli import main

    assert main(["-q", "analyze", str(study), "-o", str(out), "--device", "cpu"]) == 0
    return out


def _copy(folder: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(folder, target, symlinks=True)
    return target


# --- --overwrite never removes what modic did not write ------------------------------------------------------------


@pytest.mark.parametrize("where", ["the study itself", "its parent", "inside it"])
def test_output_overlapping_the_input_is_refused(
    study: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    work = _copy(study, tmp_path / "data" / "study")
    (tmp_path / "data" / "notes.txt").write_text("mine")
    out = {"the study itself": work, "its parent": work.parent, "inside it": work / "results"}[where]
    before = snapshot(tmp_path)
    result = run_cli(capsys, ["analyze", work, "-o", out, "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=[str(out), "input", "outside"])
    assert snapshot(tmp_path) == before
    assert not (work / "results").exists()


def test_output_holding_the_t1_file_is_refused(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nifti = study.parent / "nifti"
    data = _copy(nifti, tmp_path / "data")
    t1 = next(data.glob("*t1*"))
    before = snapshot(data)
    result = run_cli(capsys, ["analyze", "--t1", t1, "-o", data, "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["holds the input", str(t1)])
    assert snapshot(data) == before


def test_overwrite_refuses_a_folder_with_files_modic_did_not_write(
    study: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path / "out")
    (out / "my_notes.txt").write_text("keep me")
    (out / "sub").mkdir()
    (out / "sub" / "draft.docx").write_bytes(b"x")
    before = snapshot(out)
    result = run_cli(capsys, ["analyze", study, "-o", out, "--overwrite", "--device", "cpu"])
    line = assert_clean_failure(result, exit_code=2, mentions=["2 file(s) that modic did not write", "my_notes.txt",
                                                               "sub/draft.docx", "new -o"])
    assert "report.json" not in line
    assert snapshot(out) == before


def test_overwrite_refuses_a_folder_without_marker(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that looks like an output but was not listed by modic (e.g. copied by hand without the marker)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    result = run_cli(capsys, ["analyze", study, "-o", out, "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["'report.json'", "did not write"])
    assert (out / "report.json").read_text() == "{}"


def test_overwrite_replaces_modic_own_output(
    study: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path / "out")
    created = json.loads((out / "report.json").read_text())["created"]
    result = run_cli(capsys, ["analyze", study, "-o", out, "--overwrite", "--device", "cpu"])
    assert result.code == 0, result.err
    assert REPORT_FILES <= {p.name for p in out.iterdir()}
    assert json.loads((out / "report.json").read_text())["created"] >= created
    assert foreign_files(out) == []
    assert_no_temporaries(tmp_path)


def test_marker_lists_every_file_written(finished: Path) -> None:
    listed = json.loads((finished / MARKER_NAME).read_text())["files"]
    assert set(listed) == {p.relative_to(finished).as_posix() for p in finished.rglob("*") if p.is_file()} - {
        MARKER_NAME
    }
    assert REPORT_FILES - {MARKER_NAME} <= set(listed)


def test_output_folder_replace_refuses_foreign_files_at_the_last_step(tmp_path: Path) -> None:
    """The atomic writer itself refuses (last line of defence, e.g. a file added while the analysis ran)."""
    target = tmp_path / "out"
    with output_folder(target) as folder:
        (folder / "a.txt").write_text("modic")
    (target / "b.txt").write_text("user")
    with pytest.raises(OutputError, match="'b.txt'"), output_folder(target, replace=True) as folder:
        (folder / "a.txt").write_text("new")
    assert (target / "b.txt").read_text() == "user" and (target / "a.txt").read_text() == "modic"
    assert_no_temporaries(tmp_path)
    (target / "b.txt").unlink()
    with output_folder(target, replace=True) as folder:
        (folder / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new"
    assert_no_temporaries(tmp_path)


def test_nested_markers_and_links(tmp_path: Path) -> None:
    top = tmp_path / "demo"
    with output_folder(top / "input") as folder:
        (folder / "x.dcm").write_bytes(b"1")
    with output_folder(top / "result") as folder:
        (folder / "report.json").write_text("{}")
    assert foreign_files(top) == []
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("p")
    (top / "result" / "link").symlink_to(elsewhere)
    assert foreign_files(top) == ["result/link"]


# --- places where the output cannot be written: refused before the work --------------------------------------------


def test_output_is_the_current_folder(study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for output in (".", ".."):
        result = run_cli(capsys, ["analyze", study, "-o", output, "--device", "cpu"])
        assert_clean_failure(result, exit_code=2, mentions=["current folder", "-o results"])
    assert list(work.iterdir()) == []


def test_output_is_a_symbolic_link(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    started = time.monotonic()
    result = run_cli(capsys, ["analyze", study, "-o", link, "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["symbolic link", str(real)])
    assert time.monotonic() - started < 5, "refused before the analysis"
    assert link.is_symlink() and list(real.iterdir()) == []


def test_output_is_a_mount_point(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert os.path.ismount("/proc")
    result = run_cli(capsys, ["analyze", study, "-o", "/proc", "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["mount point", "new folder inside it"])


# --- SIGTERM and leftovers of dead runs ----------------------------------------------------------------------------


def _start_analyze(study: Path, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "modic", "analyze", str(study), "-o", str(out), "--device", "cpu"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def _wait_for_temporary(parent: Path, process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """Wait until the analysis writes its temporary output folder (the outputs are being written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.name.startswith(TEMP_PREFIX) and "out-" in p.name for p in parent.iterdir()):
            return
        if process.poll() is not None:
            pytest.fail(f"analyze ended (exit {process.returncode}) before its outputs were being written")
        time.sleep(0.01)
    pytest.fail("the outputs were never written")


def test_sigterm_while_writing_removes_the_temporary_folder(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "out"
    out.parent.mkdir()
    process = _start_analyze(study, out, tmp_path / "stderr.txt")
    try:
        _wait_for_temporary(out.parent, process, timeout=240)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        if process.poll() is None:
            process.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "terminated" in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert list(out.parent.iterdir()) == [], "no temporary (report, label maps, seg.dcm) may stay behind"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporaries_of_dead_runs_only_are_removed(tmp_path: Path) -> None:
    host = temp_prefix()[len(TEMP_PREFIX):].split(".")[0]
    dead = tmp_path / f"{TEMP_PREFIX}{host}.{_dead_pid()}-out-abc"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f"{TEMP_PREFIX}{host}.{sleeper.pid}-other-def"
        other_host = tmp_path / f"{TEMP_PREFIX}0123abcd.{_dead_pid()}-x-ghi"
        old_style = tmp_path / f"{TEMP_PREFIX}k2j3h4"
        for folder in (dead, alive, other_host, old_style):
            folder.mkdir()
            (folder / "seg.dcm").write_bytes(b"identifiable")
        mine = tmp_path / "results"
        mine.mkdir()
        assert remove_stale_temporaries(tmp_path) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other_host.name, "results"])
        assert remove_stale_temporaries(tmp_path, every_owner=True) == 2
        assert [p.name for p in tmp_path.iterdir()] == ["results"]
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.slow
def test_rerun_after_kill_9_removes_the_leftovers(study: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "out"
    out.parent.mkdir()
    process = _start_analyze(study, out, tmp_path / "stderr.txt")
    try:
        _wait_for_temporary(out.parent, process, timeout=240)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert leftovers, "kill -9 leaves the temporary folder (nothing can remove it at that moment)"
    result = run_cli(capsys, ["analyze", study, "-o", out, "--device", "cpu", "--no-dicom"])
    assert result.code == 0, result.err
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_stale_temporaries_next_to_the_output_are_removed_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rerun that fails on its input still removes what a killed run left next to the output."""
    host = atomic.temp_prefix()[len(TEMP_PREFIX):].split(".")[0]
    leftover = tmp_path / f"{TEMP_PREFIX}{host}.{_dead_pid()}-out-xyz"
    leftover.mkdir()
    (leftover / "seg.dcm").write_bytes(b"identifiable")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(capsys, ["analyze", empty, "-o", tmp_path / "out", "--device", "cpu"])
    assert result.code == 1
    assert not leftover.exists()


def test_slice_output_holding_its_picture_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(folder / "t1.png")
    before = snapshot(folder)
    result = run_cli(capsys, ["analyze-slice", "--t1", folder / "t1.png", "--spacing", "0.5", "0.5", "-o", folder,
                              "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["holds the input", "t1.png"])
    assert snapshot(folder) == before


def test_clinical_file_inside_the_output_is_refused(
    study: Path, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished, tmp_path / "out")
    (out / "patient.yaml").write_text("age_years: 50\n")
    result = run_cli(capsys, ["analyze", study, "-o", out, "--overwrite", "--clinical", out / "patient.yaml",
                              "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["holds the input", "patient.yaml"])
    assert (out / "patient.yaml").read_text() == "age_years: 50\n"


def test_demo_into_the_current_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.txt").write_text("keep")
    result = run_cli(capsys, ["demo", "-o", ".", "--overwrite", "--device", "cpu"])
    assert_clean_failure(result, exit_code=2, mentions=["current folder"])
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("which", ["report", "clinical"])
def test_candidacy_output_that_is_its_input_is_refused(
    finished: Path, tmp_path: Path, which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _copy(finished, tmp_path / "out") / "report.json"
    clinical = tmp_path / "patient.yaml"
    clinical.write_text("age_years: 50\n")
    target = report if which == "report" else clinical
    before = target.read_bytes()
    result = run_cli(capsys, ["candidacy", report, "--clinical", clinical, "-o", target])
    assert_clean_failure(result, exit_code=2, mentions=["is the input", str(target)])
    assert target.read_bytes() == before
