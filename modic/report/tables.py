"""``levels.csv``: one row per graded endplate, for spreadsheets and cohort statistics."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

TYPE_PROBABILITY_COLUMNS = ("p_type_0", "p_type_1", "p_type_2", "p_type_3")
LEVEL_COLUMNS = (
    "study_key", "level", "level_modic_type", "level_presence_probability", "level_changed",
    *(f"level_{name}" for name in TYPE_PROBABILITY_COLUMNS), "disc_height_ratio", "disc_t1_ratio_median",
    "disc_t2_ratio_median", "endplate", "modic_type",
    "mixed", "confidence", "presence_probability", *TYPE_PROBABILITY_COLUMNS, "method",
    "region_fraction", "height_fraction", "t1_ratio_median", "t2_ratio_median", "region_voxels", "region_size",
    "size_unit", "depth_mm", "reference_voxels", "reference_part", "note",
)


def endplate_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows of ``levels.csv`` from a report dictionary."""
    unit = report["anatomy"]["size_unit"]
    rows = []
    for level in report["levels"]:
        for endplate in level["endplates"]:
            signal = endplate["signal"]
            region = endplate["region"] or {}
            disc = level.get("disc") or {"signal": {}}
            rows.append(
                {
                    "study_key": report["study"]["key"],
                    "level": level["level"],
                    "level_modic_type": level["modic_type"],
                    "level_presence_probability": _blank_if_none(level["presence_probability"]),
                    "level_changed": _blank_if_none(level["changed"]),
                    **_type_columns(level.get("type_probabilities"), prefix="level_"),
                    "disc_height_ratio": _blank_if_none(disc.get("height_ratio")),
                    "disc_t1_ratio_median": (disc["signal"].get("t1") or {}).get("ratio_median", ""),
                    "disc_t2_ratio_median": (disc["signal"].get("t2") or {}).get("ratio_median", ""),
                    "endplate": endplate["endplate"],
                    "modic_type": endplate["modic_type"],
                    "mixed": endplate["mixed"] or "",
                    "confidence": endplate["confidence"],
                    "presence_probability": _blank_if_none(endplate["presence_probability"]),
                    **_type_columns(endplate.get("type_probabilities"), prefix=""),
                    "method": endplate["method"],
                    "region_fraction": endplate["extent"]["region_fraction"],
                    "height_fraction": endplate["extent"]["height_fraction"],
                    "t1_ratio_median": (signal["t1"] or {}).get("ratio_median", ""),
                    "t2_ratio_median": (signal["t2"] or {}).get("ratio_median", ""),
                    "region_voxels": region.get("voxels", ""),
                    "region_size": region.get(f"size_{unit}", ""),
                    "size_unit": unit,
                    "depth_mm": region.get("depth_mm", ""),
                    "reference_voxels": region.get("reference_voxels", ""),
                    "reference_part": region.get("reference_part", ""),
                    "note": endplate["note"] or "",
                }
            )
    return rows


def _type_columns(probabilities: Mapping[str, float] | None, *, prefix: str) -> dict[str, Any]:
    """The four type probabilities as columns (blank without a type model or without both sequences)."""
    return {
        f"{prefix}{column}": "" if probabilities is None else probabilities[column[-1]]
        for column in TYPE_PROBABILITY_COLUMNS
    }


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = LEVEL_COLUMNS) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _blank_if_none(value: Any) -> Any:
    """An empty cell for a value that was not measured (no presence model), else the value."""
    return "" if value is None else value
