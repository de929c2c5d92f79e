"""docs/report.md and docs/report.schema.json stay in step with what the report writers produce."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modic.report import dicom_sr
from modic.report.tables import LEVEL_COLUMNS
from modic.report.writer import LABEL_MAPS

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _property_names(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "properties":
                yield from value
            yield from _property_names(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _property_names(item)


def _documented(text: str, name: str) -> bool:
    return re.search(rf"`[^`\n]*\b{re.escape(name)}\b[^`\n]*`", text) is not None


def test_every_schema_field_is_documented() -> None:
    schema = json.loads((DOCS / "report.schema.json").read_text(encoding="utf-8"))
    text = (DOCS / "report.md").read_text(encoding="utf-8")
    missing = sorted({name for name in _property_names(schema) if not _documented(text, name)})
    assert missing == []


def test_csv_columns_label_maps_and_sr_codes_are_documented() -> None:
    text = (DOCS / "report.md").read_text(encoding="utf-8")
    for name in [*LEVEL_COLUMNS, *LABEL_MAPS]:
        assert f"| `{name}` |" in text, name
    for code in (dicom_sr.MODIC_TYPE, dicom_sr.REGION_FRACTION, dicom_sr.HEIGHT_FRACTION, dicom_sr.T1_RATIO,
                 dicom_sr.T2_RATIO, dicom_sr.CONFIDENCE):
        assert f"`{code.value}` | {code.meaning} |" in text, code.value
