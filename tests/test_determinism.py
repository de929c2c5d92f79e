"""Determinism: the same study and model give the same bytes.

``modic analyze`` runs twice on one tiny synthetic study: the second time on
a copy in another folder and with one torch thread, as a batch worker on
another machine might. report.json must be byte-identical apart from its
``created`` timestamp, and levels.csv, the label maps, the pictures and
report.html (apart from the timestamp it shows) byte-identical.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.bad_input import copy_series, run_cli, synthetic_source

pytestmark = pytest.mark.timeout(300)


def without_created(path: Path) -> tuple[bytes, str]:
    """report.json bytes with the ``created`` value blanked, and that value."""
    text = path.read_text(encoding="utf-8")
    created = json.loads(text)["created"]
    line = f'"created": "{created}",'
    assert text.count(line) == 1
    return text.replace(line, '"created": "",').encode("utf-8"), created


def test_repeated_analysis_gives_identical_outputs(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    source = synthetic_source(tmp_path_factory)
    first_input = copy_series(source, tmp_path / "a" / "study", ["t1", "t2"])
    second_input = Path(shutil.copytree(first_input, tmp_path / "elsewhere" / "same study"))

    first = run_cli(capsys, ["analyze", first_input, "-o", tmp_path / "run1", "--device", "cpu", "--no-dicom"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        second = run_cli(capsys, ["analyze", second_input, "-o", tmp_path / "run2", "--device", "cpu", "--no-dicom"])
    finally:
        torch.set_num_threads(threads)
    assert first.code == 0 and second.code == 0, first.err + second.err
    assert first.out.replace(str(tmp_path / "run1"), "OUT") == second.out.replace(str(tmp_path / "run2"), "OUT")

    one, two = tmp_path / "run1", tmp_path / "run2"
    report_one, created_one = without_created(one / "report.json")
    report_two, created_two = without_created(two / "report.json")
    assert report_one == report_two
    assert json.loads(report_one)["levels"], "nothing was graded: the comparison would prove little"

    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir())
    assert "levels.csv" in names and "report.html" in names
    for name in names:
        if name == "report.json":
            continue
        a, b = (one / name).read_bytes(), (two / name).read_bytes()
        if name == "report.html":
            a, b = a.replace(created_one.encode(), b""), b.replace(created_two.encode(), b"")
        assert a == b, f"{name} differs between two runs on the same input"
