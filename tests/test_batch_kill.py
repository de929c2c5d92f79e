"""``kill -9`` of a running ``modic batch``: nothing finished is lost, nothing is half-written, a rerun completes."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.batch import make_cohort, manifest, summary

from modic.atomic import TEMP_PREFIX
from modic.cli import main
from modic.report.writer import LABEL_MAPS

OPTIONS = ["--device", "cpu", "--no-dicom"]
COMPLETE = {"report.json", "levels.csv", "report.html", *LABEL_MAPS}


def _wait_for_first_finished(out: Path, process: subprocess.Popen, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the batch ended (exit {process.returncode}) before it could be killed")
        if any(record["status"] == "ok" for record in manifest(out)):
            return
        time.sleep(0.1)
    pytest.fail("no study finished in time")


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    keys = make_cohort(tmp_path, (51, 52, 53, 54))

    with open(tmp_path / "stderr.txt", "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "modic", "batch", str(root), "-o", str(out), *OPTIONS],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            _wait_for_first_finished(out, process, timeout=300)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL

    finished = {}
    for entry in out.iterdir():
        if entry.is_dir() and not entry.name.startswith(TEMP_PREFIX):
            assert COMPLETE <= {p.name for p in entry.iterdir()}, f"{entry.name} is a half-written study folder"
            finished[entry.name] = json.loads((entry / "report.json").read_text(encoding="utf-8"))["created"]
    assert finished and len(finished) < len(keys), "the kill must fall between the first and the last study"
    lines_before = len(manifest(out))

    assert main(["-q", "batch", str(root), "-o", str(out), *OPTIONS]) == 0
    assert not [p.name for p in out.iterdir() if p.name.startswith(TEMP_PREFIX)], "temporaries must be removed"
    for key in keys:
        assert COMPLETE <= {p.name for p in (out / key).iterdir()}
    for key, created in finished.items():
        assert json.loads((out / key / "report.json").read_text(encoding="utf-8"))["created"] == created

    records = manifest(out)
    ok = collections.Counter(r["key"] for r in records if r["status"] == "ok")
    rerun = {r["key"]: r["status"] for r in records[lines_before:]}
    for key in keys:
        assert ok[key] <= 1, f"{key} was analysed twice"
        assert rerun[key] == ("skipped" if key in finished else "ok")
        assert ok[key] == 1 or key in finished

    rows = summary(out)
    assert {r["study_key"] for r in rows} == set(keys)
    pairs = [(r["study_key"], r["endplate"]) for r in rows]
    assert len(pairs) == len(set(pairs)), "summary.csv lists a study twice"
    assert {r["status"] for r in rows} == {"ok"}
