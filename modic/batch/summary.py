"""The cohort view of a batch: ``summary.csv``, counts and Modic prevalence per level.

``summary.csv`` is rebuilt from the per-study ``report.json`` files of the
output folder (the finished studies) and the manifest (the studies whose
last attempt failed), so it can always be regenerated, e.g. after a run
was killed. It has the columns of ``levels.csv`` plus the study's status,
its source description, the codes of its report warnings (``warnings``,
``;``-separated: input problems handled, single sequence, uncertain level
naming ...) and the error of a failed study: one row per study and graded
endplate, one row for a study without graded endplates or that failed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modic import atomic
from modic.atomic import TEMP_PREFIX
from modic.errors import SchemaError
from modic.report.schema import read_report
from modic.report.tables import LEVEL_COLUMNS, endplate_rows, to_csv

log = logging.getLogger("modic.batch")

SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS: tuple[str, ...] = ("study_key", "status", "source", "warnings", "error", *LEVEL_COLUMNS[1:])
MODIC_TYPES = (1, 2, 3)


def finished_reports(out: str | Path) -> dict[str, dict[str, Any]]:
    """The report of every finished study folder directly under ``out``, by study key."""
    reports: dict[str, dict[str, Any]] = {}
    for folder in sorted(Path(out).iterdir()):
        if not folder.is_dir() or folder.name.startswith(TEMP_PREFIX) or not (folder / "report.json").is_file():
            continue
        try:
            reports[folder.name] = read_report(folder / "report.json")
        except SchemaError as exc:
            log.warning("study folder %s is left out of the summary: %s", folder.name, exc)
    return reports


def summary_rows(
    reports: Mapping[str, Mapping[str, Any]],
    failures: Iterable[Mapping[str, Any]],
    *,
    sources: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``summary.csv``.

    Args:
        reports: finished studies by key (:func:`finished_reports`).
        failures: the last manifest record of each study whose last attempt
            failed; those whose key has a finished folder are left out.
        sources: source description by key, for the ``source`` column.
    """
    sources = sources or {}
    rows: list[dict[str, Any]] = []
    for key in sorted(reports):
        codes = dict.fromkeys(
            str(w.get("code")) for w in reports[key].get("warnings") or [] if w.get("severity", "warning") == "warning"
        )
        base = {"study_key": key, "status": "ok", "source": sources.get(key, ""), "warnings": ";".join(codes), "error": ""}
        endplates = endplate_rows(reports[key])
        if endplates:
            rows.extend({**row, **base} for row in endplates)
        else:
            rows.append(dict(base))
    for record in sorted(failures, key=lambda r: (str(r.get("key") or ""), str(r.get("source") or ""))):
        if record.get("key") and record["key"] in reports:
            continue
        rows.append(
            {
                "study_key": record.get("key") or "",
                "status": "failed",
                "source": record.get("source") or "",
                "warnings": "",
                "error": record.get("error") or "",
            }
        )
    return rows


def write_summary(out: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``OUT/summary.csv`` atomically."""
    path = Path(out) / SUMMARY_NAME
    atomic.write_text(path, to_csv(list(rows), SUMMARY_COLUMNS))  # type: ignore[arg-type]
    return path


@dataclass(frozen=True)
class LevelPrevalence:
    """How many finished studies have each Modic type at one level."""

    level: str
    studies: int
    with_type: dict[int, int]

    def percent(self, modic_type: int) -> float:
        return 100.0 * self.with_type.get(modic_type, 0) / self.studies if self.studies else 0.0


def prevalence(reports: Mapping[str, Mapping[str, Any]], levels: Sequence[str]) -> list[LevelPrevalence]:
    """Per level: studies where it was graded, and how many of them have Modic type 1, 2 and 3 there.

    A level's type is the report's level call (the dominant type of its two endplates).
    """
    result = []
    for name in levels:
        graded = [level for report in reports.values() for level in report["levels"] if level["level"] == name]
        counts = {t: sum(1 for level in graded if level["modic_type"] == t) for t in MODIC_TYPES}
        result.append(LevelPrevalence(level=name, studies=len(graded), with_type=counts))
    return result


def final_table(counts: Mapping[str, int], levels: Sequence[LevelPrevalence], *, finished: int) -> str:
    """The lines printed at the end of a batch: this run's counts and the cohort's prevalence per level."""
    lines = [
        f"studies this run: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{counts.get('skipped', 0)} skipped (already finished)",
        f"Modic prevalence over {finished} finished studies (% of studies graded at the level):",
        f"  {'level':<8}{'studies':>8}{'type 1':>9}{'type 2':>9}{'type 3':>9}",
    ]
    for level in levels:
        cells = "".join(f"{level.percent(t):>8.1f}%" for t in MODIC_TYPES)
        lines.append(f"  {level.level:<8}{level.studies:>8}{cells}")
    return "\n".join(lines)
