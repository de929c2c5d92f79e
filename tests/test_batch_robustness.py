"""``modic batch`` finishes and tells the truth: time limits, stopped and killed workers, Ctrl-C, broken folders.

The situations are built with real files, real worker processes and real
signals (``os.kill``); what is checked is what the user gets: exit code, the
manifest, summary.csv, the printed table, which processes and files remain.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from helpers.batch import copy_series, make_cohort, make_study, manifest, series_folder, summary

from modic.atomic import TEMP_PREFIX
from modic.batch.sources import discover
from modic.batch.worker import BatchJob, process_study
from modic.cli import build_parser, main
from modic.settings import load_settings

pytestmark = pytest.mark.timeout(300)

OPTIONS = ["--device", "cpu", "--no-dicom"]
PRIVATE_NAME = "DOE^JOHN_1950"


def _broken_folder(folder: Path, count: int = 3) -> None:
    """A study folder whose files all look like DICOM but are cut short inside their header."""
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"IM{i}.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"1.2")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One run over a good study (too slow for a 0.5 s time limit) and a folder of broken files."""
    base = tmp_path_factory.mktemp("robust")
    keys = make_cohort(base, (71,))
    _broken_folder(base / "root" / PRIVATE_NAME)
    out = base / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["batch", str(base / "root"), "-o", str(out), *OPTIONS, "--study-timeout", "0.5"])
    result = SimpleNamespace(returncode=code, stdout=stdout.getvalue(), stderr=stderr.getvalue())
    return SimpleNamespace(out=out, key=keys[0], result=result)


def test_study_over_the_time_limit_is_failed_and_the_batch_ends(limited: SimpleNamespace) -> None:
    assert limited.result.returncode == 1, limited.result.stderr
    records = {r["key"]: r for r in manifest(limited.out) if r["key"]}
    assert records[limited.key]["status"] == "failed"
    assert "time limit of 0.5 s" in records[limited.key]["error"]
    assert "--study-timeout" in records[limited.key]["error"]
    assert not (limited.out / limited.key).exists()
    assert not [p.name for p in limited.out.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert "0 ok, 2 failed" in limited.result.stdout


def test_folder_of_unreadable_files_is_a_failed_input(limited: SimpleNamespace) -> None:
    failed = [r for r in manifest(limited.out) if r["status"] == "failed" and not r["key"]]
    assert len(failed) == 1
    assert failed[0]["source"] == "unusable folder 1/1"
    assert "none of the 3 file(s)" in failed[0]["error"] and "corrupt: 3" in failed[0]["error"]
    rows = [r for r in summary(limited.out) if r["status"] == "failed" and not r["study_key"]]
    assert [r["source"] for r in rows] == ["unusable folder 1/1"]
    assert "unusable folder 1/1" in limited.result.stdout
    for text in (limited.result.stdout, limited.result.stderr, (limited.out / "manifest.jsonl").read_text(),
                 (limited.out / "summary.csv").read_text()):
        assert PRIVATE_NAME not in text and "DOE" not in text


def test_unusable_folder_keeps_its_name_only_with_keep_identifiers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_study(72, tmp_path / "gen")
    copy_series(series_folder(tmp_path / "gen", "SAG_T1"), root / "good")
    _broken_folder(root / PRIVATE_NAME)
    sources = discover(root)
    assert [s.kind for s in sources] == ["dicom", "invalid"]
    assert sources[1].identifiers == {"folder": str(root / PRIVATE_NAME)}
    assert PRIVATE_NAME not in sources[1].label + (sources[1].error or "")


def _batch_options() -> set[str]:
    parser = next(
        action.choices["batch"] for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    return {option for action in parser._actions for option in action.option_strings}


def test_recorded_advice_names_only_options_of_batch(tmp_path: Path) -> None:
    """Failures whose 'modic analyze' advice names --t1-uid or --t1: the manifest must name what batch takes."""
    make_study(73, tmp_path / "gen", extra_series=("axial",))
    copy_series(series_folder(tmp_path / "gen", "AX"), tmp_path / "root" / "study")
    study = tmp_path / "gen" / "dicom"
    cohort = tmp_path / "cohort.csv"
    cohort.write_text(f"t1,t2\n{study},\n{tmp_path / 'gen' / 'nifti' / 't1.nii.gz'},{study}\n")
    job = BatchJob(out=tmp_path / "out", config=load_settings(), device="cpu")
    (tmp_path / "out").mkdir()
    accepted = _batch_options()
    sources = [*discover(tmp_path / "root"), *discover(cohort)]
    assert len(sources) == 3
    for source in sources:
        outcome = process_study(source, job)
        assert outcome.status == "failed" and outcome.error
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", outcome.error))
        assert named <= accepted, f"{outcome.error!r} names {named - accepted}, which 'modic batch' does not take"
        assert "cohort CSV" in outcome.error, outcome.error


# --- stopped workers, Ctrl-C and SIGTERM: real processes and signals -----------------------------------------------


def _workers(batch: psutil.Process) -> list[psutil.Process]:
    return [c for c in batch.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())
            and "resource_tracker" not in " ".join(c.cmdline())]


def _start(root: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "modic", "batch", str(root), "-o", str(out), *OPTIONS, *extra],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            preexec_fn=_as_in_a_terminal,
        )


def _as_in_a_terminal() -> None:
    """Ctrl-C as in a terminal: SIGINT back to its default (a shell ignores it in background jobs such as CI's)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(
    condition: Callable[[], bool], process: subprocess.Popen[bytes], *, timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the batch ended (exit {process.returncode}) before {what}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("robust_cohort")
    return SimpleNamespace(base=base, root=base / "root", keys=make_cohort(base, (74, 75)))


def _interrupt_while_working(
    cohort: SimpleNamespace, tmp_path: Path, *, meddle: Callable[[psutil.Process], None], how: str
) -> Path:
    """Start a batch, ``meddle`` with its worker once it exists, then interrupt the batch ``how``.

    Checks the exit status (130 after Ctrl-C, 143 after SIGTERM), that the worker
    died with the batch and that stderr holds no traceback; returns the output folder.
    """
    out = tmp_path / "out"
    stderr = tmp_path / "stderr.txt"
    process = _start(cohort.root, out, stderr)
    batch = psutil.Process(process.pid)
    try:
        _wait_for(lambda: len(_workers(batch)) == 1, process, timeout=120, what="its worker started")
        (worker,) = _workers(batch)
        meddle(worker)
        if how.startswith("Ctrl-C"):
            os.killpg(process.pid, signal.SIGINT)
            expected = 130
        else:
            os.kill(process.pid, signal.SIGTERM)
            expected = 143
        assert process.wait(timeout=30) == expected, stderr.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, "the worker outlived the batch"
    assert "Traceback" not in stderr.read_text()
    return out


def _stop_and_continue(worker: psutil.Process) -> None:
    time.sleep(1.0)
    os.kill(worker.pid, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(worker.pid, signal.SIGCONT)


@pytest.mark.parametrize("how", ["Ctrl-C to the process group", "SIGTERM to the batch"])
def test_interrupt_after_sigstop_and_sigcont_stops_the_batch(cohort: SimpleNamespace, tmp_path: Path, how: str) -> None:
    out = _interrupt_while_working(cohort, tmp_path, meddle=_stop_and_continue, how=how)
    assert not [p.name for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)]


def _ctrl_c_through_its_start(worker: psutil.Process) -> None:
    """SIGINT to the worker every 10 ms for 1.5 s: from its first instruction to its first study."""
    for _ in range(150):
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGINT)
        time.sleep(0.01)
    assert worker.is_running() and worker.status() != psutil.STATUS_ZOMBIE, "SIGINT killed the starting worker"


def test_ctrl_c_while_a_worker_is_still_starting_prints_no_traceback(cohort: SimpleNamespace, tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, a worker still starting Python and importing included.

    Such a worker used to die of KeyboardInterrupt with a traceback on stderr before it
    could ignore SIGINT (seen under load in the Ctrl-C test above); it is now born ignoring it.
    """
    _interrupt_while_working(cohort, tmp_path, meddle=_ctrl_c_through_its_start, how="Ctrl-C to the process group")


@pytest.mark.slow
def test_stopped_worker_is_killed_at_the_time_limit_and_the_cohort_completes(
    cohort: SimpleNamespace, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process = _start(cohort.root, out, tmp_path / "stderr.txt", "--study-timeout", "30")
    batch = psutil.Process(process.pid)
    try:
        _wait_for(lambda: any(r["status"] == "ok" for r in manifest(out)), process, timeout=240,
                  what="the first study finished")
        (worker,) = _workers(batch)
        os.kill(worker.pid, signal.SIGSTOP)  # busy with the second study
        assert process.wait(timeout=240) == 1, (tmp_path / "stderr.txt").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    records = manifest(out)
    assert sorted(r["status"] for r in records) == ["failed", "ok"]
    (failed,) = [r for r in records if r["status"] == "failed"]
    assert "time limit of 30 s" in failed["error"]
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    rows = summary(out)
    assert {r["status"] for r in rows} == {"ok", "failed"}
    assert main(["-q", "batch", str(cohort.root), "-o", str(out), *OPTIONS, "--retry-failed"]) == 0
    assert json.loads((out / failed["key"] / "report.json").read_text())["levels"]


@pytest.mark.parametrize("where", ["inside", "holding"])
def test_output_overlapping_the_cohort_is_refused(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data" / "cohort"
    root.mkdir(parents=True)
    (root / "IM1.dcm").write_bytes(b"x")
    out = root / "results" if where == "inside" else tmp_path / "data"
    assert main(["batch", str(root), "-o", str(out), *OPTIONS]) == 2
    assert "choose an -o outside" in capsys.readouterr().err
    assert sorted(p.name for p in root.iterdir()) == ["IM1.dcm"]


def test_folder_of_other_files_is_not_a_failed_study(tmp_path: Path) -> None:
    """NIfTI files, documents and hidden files beside the studies are skipped, not failed studies."""
    root = tmp_path / "root"
    make_study(76, tmp_path / "gen")
    copy_series(series_folder(tmp_path / "gen", "SAG_T1"), root / "good")
    (root / "nifti").mkdir()
    (root / "nifti" / "t1.nii.gz").write_bytes(b"x")
    (root / "docs").mkdir()
    (root / "docs" / "protocol.pdf").write_bytes(b"%PDF")
    (root / "docs" / ".DS_Store").write_bytes(b"x")
    assert [s.kind for s in discover(root)] == ["dicom"]


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not stop root")
def test_folder_without_read_permission_is_a_failed_input(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_study(77, tmp_path / "gen")
    copy_series(series_folder(tmp_path / "gen", "SAG_T1"), root / "good")
    _broken_folder(root / PRIVATE_NAME)
    (root / PRIVATE_NAME).chmod(0)
    try:
        sources = discover(root)
    finally:
        (root / PRIVATE_NAME).chmod(0o755)
    assert [s.kind for s in sources] == ["dicom", "invalid"]
    assert "cannot be read" in (sources[1].error or "") and PRIVATE_NAME not in sources[1].label


@pytest.mark.parametrize("where", ["a file", "below a file", "a place the file system refuses"])
def test_output_that_cannot_be_written_is_one_line(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "afile").write_text("keep")
    out = {"a file": tmp_path / "afile", "below a file": tmp_path / "afile" / "out",
           "a place the file system refuses": Path("/proc") / f"modic-test-{os.getpid()}" / "out"}[where]
    code = main(["batch", str(root), "-o", str(out), *OPTIONS])
    err = capsys.readouterr().err
    assert code == (2 if where == "a file" else 1), err
    assert err.startswith("modic: error:") and "internal error" not in err and str(out) in err
    assert (tmp_path / "afile").read_text() == "keep"


@pytest.mark.slow
def test_ctrl_z_of_the_whole_batch_does_not_count_against_the_limit(cohort: SimpleNamespace, tmp_path: Path) -> None:
    """SIGSTOP then SIGCONT to the process group (Ctrl-Z, fg) for longer than the limit: nothing is timed out."""
    out = tmp_path / "out"
    process = _start(cohort.root, out, tmp_path / "stderr.txt", "--study-timeout", "20")
    try:
        _wait_for(lambda: any(r["status"] == "ok" for r in manifest(out)), process, timeout=240,
                  what="the first study finished")
        os.killpg(process.pid, signal.SIGSTOP)
        time.sleep(25)
        os.killpg(process.pid, signal.SIGCONT)
        assert process.wait(timeout=240) == 0, (tmp_path / "stderr.txt").read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert sorted(r["status"] for r in manifest(out)) == ["ok", "ok"]
