"""The command line when its reader goes away: ``modic inspect STUDY | head -1`` ends quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.batch import make_study

pytestmark = pytest.mark.timeout(120)


def test_closed_stdout_ends_quietly(tmp_path: Path) -> None:
    study = make_study(8, tmp_path / "study") / "dicom"
    process = subprocess.Popen(
        [sys.executable, "-m", "modic", "inspect", str(study)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line is printed, as with '| head -0'
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=100) == 141
    assert "error" not in stderr.lower() and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_closed_stdout_after_the_first_line(tmp_path: Path) -> None:
    study = make_study(8, tmp_path / "study") / "dicom"
    result = subprocess.run(
        f"set -o pipefail; '{sys.executable}' -m modic inspect '{study}' | head -1",
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=100,
    )
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == "" or ("error" not in result.stderr.lower() and "Traceback" not in result.stderr), (
        result.stderr
    )
    assert result.returncode in (0, 141)
