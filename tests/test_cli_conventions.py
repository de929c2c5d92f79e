"""Command-line conventions: -i/--input, -o/--output, global flags after the command, --method, help texts."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from helpers.bad_input import assert_clean_failure, run_cli
from modic.cli import _subcommands, build_parser
from modic.synth import generate_study, write_study

PARSER = build_parser()


def _parse(*args: str) -> argparse.Namespace:
    return PARSER.parse_args(list(args))


@pytest.mark.parametrize(
    ("args", "name", "value"),
    [
        (("analyze", "-i", "s", "-o", "o"), "study_flag", Path("s")),
        (("analyze", "s", "-o", "o"), "study", Path("s")),
        (("inspect", "--input", "s"), "study_flag", Path("s")),
        (("batch", "-i", "cohort", "-o", "o"), "root_flag", Path("cohort")),
        (("candidacy", "-i", "r.json", "--clinical", "p.yaml"), "report_flag", Path("r.json")),
        (("evaluate", "seg", "-i", "d", "-o", "m.json"), "data", Path("d")),
        (("evaluate", "spider", "--data", "d", "--out", "m.json"), "data", Path("d")),
        (("evaluate", "synthetic", "-o", "m.json"), "out", Path("m.json")),
        (("evaluate", "seg", "-i", "d", "--output", "m.json"), "out", Path("m.json")),
        (("train", "seg", "--config", "c.yaml", "-o", "run"), "output", "run"),
        (("train", "grade", "--config", "c.yaml", "-o", "run"), "output", "run"),
        (("synth", "-o", "out"), "out_flag", Path("out")),
        (("synth", "out"), "out", Path("out")),
    ],
)
def test_inputs_and_outputs_take_the_short_flags_and_the_old_forms(args: tuple[str, ...], name: str, value: object) -> None:
    assert getattr(_parse(*args), name) == value


@pytest.mark.parametrize("command", [("analyze", "s", "-o", "o"), ("evaluate", "seg", "-i", "d", "-o", "m.json"),
                                     ("synth", "-o", "out"), ("train", "grade", "--config", "c.yaml")])
def test_global_flags_are_accepted_after_the_command(command: tuple[str, ...]) -> None:
    after = _parse(*command, "--debug", "-q")
    assert after.debug is True and after.quiet is True
    before = _parse("--debug", *command)
    assert before.debug is True and before.quiet is False
    assert _parse(*command).debug is False


def test_an_input_given_twice_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, ["inspect", tmp_path, "-i", tmp_path])
    assert_clean_failure(result, exit_code=2, mentions=["given twice", "give it once"])


def test_synth_writes_with_o_and_a_quiet_flag_after_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_cli(capsys, ["synth", "-o", tmp_path / "out", "--config", "tiny", "--format", "nifti", "-q"])
    assert result.code == 0, result.err
    assert result.err == ""
    assert [p.name for p in (tmp_path / "out").iterdir() if p.is_dir()]


def test_method_is_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, ["analyze", "s", "-o", "o", "--method", "magic"])
    assert result.code == 2 and "invalid choice: 'magic'" in result.err
    for command in (("batch", "r", "-o", "o"), ("evaluate", "spider", "-i", "d", "-o", "m"),
                    ("evaluate", "synthetic", "-o", "m"), ("analyze-slice", "--t1", "a.png", "-o", "o")):
        assert _parse(*command, "--method", "patch").method == "patch"


def test_method_replaces_the_configured_grading_method(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_study(generate_study(seed=3, config="tiny"), tmp_path / "input", formats=("dicom",))
    result = run_cli(capsys, ["analyze", "-i", tmp_path / "input" / "dicom", "-o", tmp_path / "out", "--device", "cpu",
                              "--method", "learned", "--no-dicom", "-q"])
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["models"]["classifier"]["method"] == "learned"
    assert {e["method"] for level in report["levels"] for e in level["endplates"]} == {"learned"}


INTERNAL_KEY = re.compile(r"\b(segmentation|classification|levels|endplates|training|data|runtime|memory)\.(?!(csv|json|yaml|html)\b)[a-z_]+")


def test_every_command_is_described_without_internal_setting_names() -> None:
    for parser in [PARSER, *_subcommands(PARSER)]:
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            assert parser.description or parser.prog.split()[-1] in HELP_ONLY, f"{parser.prog} has no description"
        texts = [parser.description or "", *(action.help or "" for action in parser._actions)]
        for text in texts:
            assert not INTERNAL_KEY.search(text), f"{parser.prog}: {text!r}"


HELP_ONLY = {"seg", "spider", "synthetic", "grade"}
"""Sub-commands of ``evaluate`` and ``train`` that their command's description covers; their one-line help says the rest."""
