"""YAML configuration loading (modic.config)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modic.config import load_yaml
from modic.resources import config_file
from modic.settings import load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e6", 1e6), ("3e-4", 3e-4), ("1.0e12", 1e12), ("-2E+3", -2000.0), (".5e1", 5.0), ("12", 12), ("0.5", 0.5)],
)
def test_numbers_in_scientific_notation_are_numbers(tmp_path: Path, text: str, expected: float) -> None:
    path = tmp_path / "numbers.yaml"
    path.write_text(f"value: {text}\n", encoding="utf-8")
    value = load_yaml(path)["value"]
    assert value == pytest.approx(expected) and isinstance(value, (int, float)) and not isinstance(value, bool)


@pytest.mark.parametrize("text", ["'1e6'", "1e6 apples", "e6", "1e"])
def test_text_that_is_not_a_number_stays_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "text.yaml"
    path.write_text(f"value: {text}\n", encoding="utf-8")
    assert isinstance(load_yaml(path)["value"], str)


def test_analysis_config_accepts_a_threshold_written_as_1e12(tmp_path: Path) -> None:
    shipped = config_file("analysis.yaml").read_text(encoding="utf-8")
    assert "  max_vertebra_volume_mm3: 75000\n" in shipped
    path = tmp_path / "analysis.yaml"
    path.write_text(shipped.replace("  max_vertebra_volume_mm3: 75000\n", "  max_vertebra_volume_mm3: 1e12\n"))
    assert load_settings(path).levels.max_vertebra_volume_mm3 == 1e12
