"""Helpers shared by the ``test_bad_input*``, ``test_privacy``, ``test_determinism`` and ``test_properties`` modules.

The command line runs in-process (:func:`modic.cli.main`) and its result is
checked the way a user sees it: exit code, one ``modic: error:`` line that
names the problem, no traceback, no partial output and no ``.modic-tmp-*``
leftovers. Inputs are built from the project's synthetic generator
(:mod:`modic.synth`, tiny config) or from the small series of
:mod:`helpers.io`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from modic.atomic import TEMP_PREFIX
from modic.cli import main
from modic.synth import generate_study, write_study

SYNTH_SEED = 5
SYNTH_PLANTED = "L4 inferior:1"
SYNTH_FOLDER = "bad_input_synthetic"


@dataclass(frozen=True)
class Result:
    """What one in-process CLI call gave."""

    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """The lines of stderr that report the failure (``modic: error: ...`` or a usage error)."""
        return [line for line in self.err.splitlines() if line.startswith("modic")]


def run_cli(capsys: pytest.CaptureFixture[str], args: Sequence[str | Path]) -> Result:
    """``modic ARGS`` in-process; usage errors of argparse (SystemExit) become their exit code."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(code=code, out=captured.out, err=captured.err)


def assert_clean_failure(
    result: Result,
    *,
    mentions: Iterable[str],
    exit_code: int = 1,
    outputs: Iterable[Path] = (),
) -> str:
    """The call failed like a ModicError should: exit code, one error line naming the problem, nothing written.

    ``mentions``: case-insensitive fragments the error line must hold (the
    problem and the way out). ``outputs``: paths that must not exist
    afterwards; their parent folders must hold no ``.modic-tmp-*`` entry.
    Returns the error line.
    """
    assert result.code == exit_code, f"exit {result.code}, expected {exit_code}; stderr: {result.err!r}"
    assert "Traceback" not in result.err and "Traceback" not in result.out
    assert "internal error" not in result.err, result.err
    lines = result.error_lines
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    line = lines[0]
    prefix = "modic: error: " if exit_code == 1 else "modic"
    assert line.startswith(prefix), line
    if exit_code == 2:
        assert "error" in line
    for fragment in mentions:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    for path in outputs:
        assert not Path(path).exists(), f"partial output left at {path}"
        assert_no_temporaries(Path(path).parent)
    return line


def assert_no_temporaries(folder: Path) -> None:
    if folder.is_dir():
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)]
        assert leftovers == [], f"temporaries left in {folder}: {leftovers}"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to check that a failed call left it unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def synthetic_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic study (T1, T2, STIR, axial T2) written once per test session; returns its folder.

    The folder holds ``dicom/<series>/IM*.dcm`` and ``truth.json``; never
    modify it, copy series out of it with :func:`copy_series`.
    """
    root = tmp_path_factory.getbasetemp() / SYNTH_FOLDER
    if not (root / "truth.json").is_file():
        study = generate_study(seed=SYNTH_SEED, config="tiny", modic=SYNTH_PLANTED)
        write_study(study, root, formats=("dicom",), extra_series=("stir", "axial"))
    return root


def series_files(source: Path, name: str) -> list[Path]:
    """Files of series ``name`` (``t1``, ``t2``, ``stir``, ``axial``) of a synthetic study folder, in slice order."""
    truth = json.loads((source / "truth.json").read_text(encoding="utf-8"))
    return [source / f for f in truth["outputs"]["dicom"]["series"][name]["files"]]


def copy_series(source: Path, target: Path, names: Iterable[str]) -> Path:
    """Copy some series of a synthetic study into ``target/<name>/``; returns ``target``."""
    for name in names:
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in series_files(source, name):
            shutil.copy2(path, folder / path.name)
    return target


def edit_all(folder: Path, change: Callable[[pydicom.Dataset], None], *, pattern: str = "*.dcm") -> list[Path]:
    """Rewrite every DICOM file under ``folder`` after ``change(dataset)``; returns the files in name order."""
    paths = sorted(folder.rglob(pattern))
    for path in paths:
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=False)
    return paths
