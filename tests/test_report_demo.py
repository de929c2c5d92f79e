"""``modic demo``: the planted-versus-found comparison, the demo config, and (slow) the demo itself."""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

import pytest

from modic import RESEARCH_NOTICE
from modic.cli import main
from modic.cli.demo import DEMO_CONFIG, _demo_settings, truth_comparison
from modic.errors import ConfigError
from modic.report.json_report import read_report
from modic.synth import load_synth_settings, parse_modic


def _found(*endplates: tuple[str, int, str | None]) -> dict:
    return {"levels": [{"level": "L4-L5", "endplates": [
        {"endplate": name, "modic_type": modic_type, "mixed": mixed} for name, modic_type, mixed in endplates
    ]}]}


def _truth(*endplates: tuple[str, int, str | None]) -> dict:
    return {"endplates": [{"name": name, "modic_type": kind, "mixed": mixed} for name, kind, mixed in endplates]}


def test_truth_comparison_counts_right_and_missed_endplates() -> None:
    text = truth_comparison(
        _found(("L4 inferior", 1, None), ("L5 superior", 2, "1/2")),
        _truth(("L4 inferior", 1, None), ("L5 superior", 2, None), ("S1 superior", 2, None), ("L3 inferior", 0, None)),
    )
    lines = text.splitlines()
    assert any(line.split()[:4] == ["L4", "inferior", "1", "1"] and line.endswith("ok") for line in lines)
    assert any(line.split()[:4] == ["L5", "superior", "2", "1/2"] and line.endswith("DIFFERENT") for line in lines)
    assert any(line.split()[:4] == ["S1", "superior", "2", "-"] and line.endswith("not graded") for line in lines)
    assert not any(line.split()[:2] == ["L3", "inferior"] for line in lines), "unplanted ungraded endplates are listed"
    assert "1 of 3 endplates right; 1 of 3 planted changes found with the right type" in text


def test_demo_config_plants_changes_on_a_fixed_anatomy() -> None:
    config = load_synth_settings(DEMO_CONFIG)
    seed, planted = _demo_settings(config)
    specs = parse_modic(planted)
    assert seed >= 0 and {spec.modic_type for spec in specs} >= {1, 2}
    assert config.variants.lumbar_count.weight() == {4: 0.0, 5: 1.0, 6: 0.0}


def test_demo_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="'demo' section"):
        _demo_settings(load_synth_settings("tiny"))
    with pytest.raises(ConfigError, match=r"'demo.seed' is -1; expected an integer of at least 0"):
        load_synth_settings({"extends": "demo", "demo": {"seed": -1, "modic": []}})


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = tmp_path_factory.mktemp("demo") / "modic-demo"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["demo", "-o", str(out), "--device", "cpu"])
    assert code == 0
    return SimpleNamespace(out=out, printed=buffer.getvalue(), report=read_report(out / "result" / "report.json"))


@pytest.mark.slow
def test_demo_writes_input_result_and_comparison(demo: SimpleNamespace) -> None:
    assert (demo.out / "input" / "truth.json").is_file()
    assert any((demo.out / "input" / "dicom").rglob("*.dcm"))
    for name in ("report.json", "report.html", "levels.csv", "seg.dcm", "sr.dcm", "sagittal_t1.png"):
        assert (demo.out / "result" / name).is_file()
    assert "truth comparison" in demo.printed
    assert RESEARCH_NOTICE in demo.printed
    assert main(["demo", "-o", str(demo.out), "--device", "cpu"]) == 2, "an existing demo folder needs --overwrite"


@pytest.mark.slow
def test_demo_finds_the_planted_types_at_the_right_levels(demo: SimpleNamespace) -> None:
    """Accuracy of the shipped model on the demo study: every graded endplate has its planted type."""
    _, planted = _demo_settings(load_synth_settings(DEMO_CONFIG))
    expected = {spec.endplate: spec.mixed or str(spec.modic_type) for spec in parse_modic(planted)}
    found = {
        e["endplate"]: e["mixed"] or str(e["modic_type"]) for level in demo.report["levels"] for e in level["endplates"]
    }
    assert set(expected) <= set(found), f"planted endplates not graded: {sorted(set(expected) - set(found))}"
    wrong = {name: (expected.get(name, "0"), got) for name, got in found.items() if got != expected.get(name, "0")}
    assert wrong == {}, f"(planted, found) differ: {wrong}"
