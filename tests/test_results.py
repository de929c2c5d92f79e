"""The result types sit at the bottom: reading and writing reports needs neither torch nor MONAI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

WRITERS = (
    "modic.results",
    "modic.report.writer",
    "modic.report.json_report",
    "modic.report.tables",
    "modic.report.figures",
    "modic.report.html",
    "modic.report.dicom_seg",
    "modic.report.dicom_sr",
    "modic.candidacy",
)


def test_report_writers_import_neither_torch_nor_monai() -> None:
    """In a fresh interpreter, importing every report writer leaves torch and MONAI unloaded."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(WRITERS)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'monai') if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(done.stdout) == []


def test_the_check_sees_torch_when_it_is_imported() -> None:
    """The same check reports torch after a module that needs it (so an empty list above means something)."""
    code = "import json, sys, modic.segmentation.infer\nprint(json.dumps(sorted(m for m in ('torch', 'monai') if m in sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(done.stdout) == ["monai", "torch"]
