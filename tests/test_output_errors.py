"""Refused output folders: library wording from the library, flag wording and exit code 2 from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.bad_input import assert_clean_failure, run_cli
from modic.errors import EXIT_FAILURE, OutputError, OutputFolderError
from modic.report.writer import check_output_folder


def _not_empty(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    return out


def test_the_library_says_overwrite_true_not_a_flag(tmp_path: Path) -> None:
    out = _not_empty(tmp_path)
    with pytest.raises(OutputFolderError) as caught:
        check_output_folder(out, overwrite=False)
    message = str(caught.value)
    assert message == f"output folder '{out}' is not empty; pass another output folder, or overwrite=True to replace it"
    assert isinstance(caught.value, OutputError) and caught.value.exit_code == EXIT_FAILURE
    advice = message.removeprefix(f"output folder '{out}'")
    assert " -o" not in advice and "--" not in advice


def test_the_library_refuses_an_output_inside_the_input_in_its_own_terms(tmp_path: Path) -> None:
    given = tmp_path / "study"
    given.mkdir()
    with pytest.raises(OutputFolderError, match=r"lies inside the input .*; pass an output folder outside the input"):
        check_output_folder(given / "out", overwrite=False, inputs=[given])


def test_the_command_line_says_it_in_flags_with_the_usage_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _not_empty(tmp_path)
    result = run_cli(capsys, ["analyze", "--t1", tmp_path / "missing.nii.gz", "-o", out])
    line = assert_clean_failure(result, exit_code=2, mentions=[f"output folder '{out}' is not empty",
                                                               "choose another -o or add --overwrite"])
    assert "overwrite=True" not in line


def test_a_foreign_file_is_refused_in_flags_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _not_empty(tmp_path)
    result = run_cli(capsys, ["analyze", "--t1", tmp_path / "missing.nii.gz", "-o", out, "--overwrite"])
    assert_clean_failure(result, exit_code=2, mentions=["1 file(s) that modic did not write", "choose a new -o"])
