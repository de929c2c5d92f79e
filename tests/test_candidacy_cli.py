"""``modic candidacy``: text and JSON output, -o file, exit codes, report schema checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modic import RESEARCH_NOTICE, cli
from modic.atomic import TEMP_PREFIX
from helpers.candidacy import DEFAULT_OK, PAYER_OK, lumbar, report

REGISTERED = cli.COMMAND_MODULES


@pytest.fixture(autouse=True)
def only_candidacy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser with this command alone, independent of the other subcommands."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("candidacy",))


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    report_path = tmp_path / "report.json"
    report_path.write_text(json.dumps(report(lumbar(L4_L5=(1, 0), L5_S1=(0, 2)))))
    clinical = tmp_path / "patient.yaml"
    clinical.write_text(yaml.safe_dump(DEFAULT_OK))
    return {"report": report_path, "clinical": clinical}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["candidacy", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_registered_as_a_command() -> None:
    assert "candidacy" in REGISTERED


def test_text_output(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run([str(files["report"]), "--clinical", str(files["clinical"])], capsys)

    assert code == 0, err
    assert out.startswith("Basivertebral nerve ablation candidacy: ELIGIBLE")
    assert "Policy: default 1.0" in out
    assert "Vertebral bodies to target: L4, L5, S1" in out
    assert RESEARCH_NOTICE in out


def test_json_output_and_file(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "candidacy.json"
    code, out, _ = run(
        [
            str(files["report"]),
            "--clinical",
            str(files["clinical"]),
            "--policy",
            "payer_strict",
            "--json",
            "-o",
            str(target),
        ],
        capsys,
    )

    printed = json.loads(out)
    assert code == 0
    assert printed["policy"]["name"] == "payer_strict"
    assert printed["verdict"] == "insufficient information"  # DEFAULT_OK lacks the payer's facts
    assert printed["research_notice"] == RESEARCH_NOTICE
    assert json.loads(target.read_text()) == printed
    assert not [p for p in target.parent.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_output_file_with_text_printout(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "candidacy.json"
    code, out, _ = run([str(files["report"]), "--clinical", str(files["clinical"]), "-o", str(target)], capsys)

    assert code == 0
    assert out.startswith("Basivertebral nerve ablation candidacy:")
    assert json.loads(target.read_text())["target_bodies"] == ["L4", "L5", "S1"]


def test_not_eligible_still_exits_0(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["clinical"].write_text(yaml.safe_dump({**DEFAULT_OK, "contraindications": ["pregnancy"]}))
    code, out, _ = run([str(files["report"]), "--clinical", str(files["clinical"]), "--json"], capsys)

    assert code == 0
    assert json.loads(out)["verdict"] == "not eligible"


def test_policy_file_path(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modic.resources import config_file

    mine = tmp_path / "mine.yaml"
    data: dict[str, Any] = yaml.safe_load(config_file("candidacy/payer_strict.yaml").read_text())
    data["name"] = "mine"
    mine.write_text(yaml.safe_dump(data, sort_keys=False))
    files["clinical"].write_text(yaml.safe_dump(PAYER_OK))
    code, out, _ = run(
        [str(files["report"]), "--clinical", str(files["clinical"]), "--policy", str(mine), "--json"], capsys
    )

    assert code == 0
    assert json.loads(out)["policy"]["name"] == "mine"
    assert json.loads(out)["verdict"] == "eligible"


def test_bad_clinical_file_exits_1(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files["clinical"].write_text("pain_type: sometimes\n")
    target = tmp_path / "candidacy.json"
    code, out, err = run([str(files["report"]), "--clinical", str(files["clinical"]), "-o", str(target)], capsys)

    assert code == 1
    assert out == ""
    assert err.startswith("modic: error: clinical file") and "pain_type" in err and err.count("\n") == 1
    assert not target.exists()


def test_bad_policy_exits_1(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(files["report"]), "--clinical", str(files["clinical"]), "--policy", "nope"], capsys)

    assert code == 1
    assert "'nope' is neither a YAML file nor a shipped config" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (report(lumbar(), schema_version="2.0"), "has schema version '2.0'"),
        ({"schema": "something-else", "levels": []}, "is not a modic report"),
        ("{not json", "is not readable JSON"),
    ],
)
def test_incompatible_report_exits_1(
    files: dict[str, Path], content: Any, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files["report"].write_text(content if isinstance(content, str) else json.dumps(content))
    code, out, err = run([str(files["report"]), "--clinical", str(files["clinical"])], capsys)

    assert code == 1
    assert out == ""
    assert expected in err


def test_minor_version_is_accepted(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    files["report"].write_text(json.dumps(report(lumbar(L4_L5=(1, 0)), schema_version="1.3")))
    code, _, _ = run([str(files["report"]), "--clinical", str(files["clinical"])], capsys)
    assert code == 0


def test_missing_report_exits_1(tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([str(tmp_path / "absent.json"), "--clinical", str(files["clinical"])], capsys)
    assert code == 1
    assert "does not exist" in err


def test_usage_errors_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["candidacy", str(files["report"])])
    assert caught.value.code == 2
    assert "--clinical" in capsys.readouterr().err

    with pytest.raises(SystemExit) as caught:
        cli.main(["candidacy", str(files["report"]), "--clinical", str(files["clinical"]), "--colour"])
    assert caught.value.code == 2
