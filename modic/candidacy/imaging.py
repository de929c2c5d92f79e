"""The imaging evidence a candidacy check reads from a report: Modic grades and warnings.

A level that the report does not list could not be graded, so its evidence
is unknown; so is an endplate that is missing, has no type or whose type is
``"undetermined"`` (the images could not decide it). A mixed grade such as
``"2/3"`` carries both of its types. A study read without its sagittal T1 or
T2 (report warnings ``missing_t1``/``missing_t2``) lists the missing
sequences in :attr:`ImagingView.missing_sequences`: Modic types are defined
on both, so candidacy treats its imaging evidence as insufficient.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modic.errors import SchemaError
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST, endplate_parts, level_endplates
from modic.results import UNDETERMINED

MODIC_TYPES = (0, 1, 2, 3)
MISSING_SEQUENCE_CODES = {"missing_t1": "T1", "missing_t2": "T2"}
"""Report warning codes saying that a sequence Modic typing needs was not read."""
_MIXED = re.compile(r"^([0-3])/([0-3])$")

QUALIFIES = "qualifies"
DOES_NOT_QUALIFY = "does not qualify"
NOT_GRADED = "not graded"


@dataclass(frozen=True)
class EndplateReading:
    """The grade of one endplate (or of a whole level when the report lists no endplates)."""

    level: str
    endplate: str
    modic_type: int | None
    mixed: str | None
    confidence: float | None

    @property
    def types(self) -> frozenset[int]:
        """Every Modic type this grade shows: the type and both parts of a mixed grade."""
        found = set() if self.modic_type is None else {self.modic_type}
        if self.mixed is not None:
            found.update(int(part) for part in self.mixed.split("/"))
        return frozenset(found)

    @property
    def graded(self) -> bool:
        return self.modic_type is not None

    def grade_text(self) -> str:
        if not self.graded:
            return "not graded"
        return self.mixed or str(self.modic_type)

    def as_dict(self, *, qualifies: bool | None) -> dict[str, Any]:
        return {
            "level": self.level,
            "endplate": self.endplate,
            "modic_type": self.modic_type,
            "mixed": self.mixed,
            "confidence": self.confidence,
            "qualifies": qualifies,
        }


@dataclass(frozen=True)
class LevelFinding:
    """Whether one disc level shows one of the wanted Modic types, with the readings used."""

    level: str
    status: str
    readings: tuple[EndplateReading, ...]
    missing_endplates: tuple[str, ...]


@dataclass(frozen=True)
class ImagingView:
    """The parts of a report.json that candidacy uses."""

    study_key: str | None
    levels: Mapping[str, tuple[EndplateReading, ...]]
    warnings: tuple[tuple[str, str], ...]
    series: Mapping[str, str]
    missing_sequences: tuple[str, ...] = ()

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> ImagingView:
        """Read ``report`` (a report.json dictionary); malformed parts are a SchemaError."""
        if not isinstance(report, Mapping):
            raise SchemaError(f"the report must be a mapping, not {type(report).__name__}")
        study = report.get("study") or {}
        if not isinstance(study, Mapping):
            raise SchemaError(f"report field 'study' must be a mapping, not {study!r}")
        raw_levels = report.get("levels")
        if not isinstance(raw_levels, list):
            raise SchemaError(f"report field 'levels' must be a list, not {raw_levels!r}; give a modic report.json")
        levels: dict[str, tuple[EndplateReading, ...]] = {}
        for index, entry in enumerate(raw_levels):
            where = f"report levels[{index}]"
            if not isinstance(entry, Mapping) or not isinstance(entry.get("level"), str):
                raise SchemaError(f"{where} must be a mapping with a 'level' name, not {entry!r}")
            name = entry["level"]
            if name not in levels:
                levels[name] = _readings(entry, where=where)
        raw_warnings = report.get("warnings") or []
        if not isinstance(raw_warnings, list):
            raise SchemaError(f"report field 'warnings' must be a list, not {raw_warnings!r}")
        warnings = []
        for index, warning in enumerate(raw_warnings):
            if not isinstance(warning, Mapping) or not isinstance(warning.get("code"), str):
                raise SchemaError(f"report warnings[{index}] must be a mapping with a 'code', not {warning!r}")
            warnings.append((warning["code"], str(warning.get("message", ""))))
        key = study.get("key")
        missing = tuple(dict.fromkeys(MISSING_SEQUENCE_CODES[c] for c, _ in warnings if c in MISSING_SEQUENCE_CODES))
        return cls(
            study_key=key if isinstance(key, str) else None,
            levels=levels,
            warnings=tuple(warnings),
            series=_series(report.get("series")),
            missing_sequences=missing,
        )

    def finding(self, level: str, types: Iterable[int]) -> LevelFinding:
        """Whether ``level`` shows any of ``types`` at either endplate (or is not graded)."""
        wanted = frozenset(types)
        readings = self.levels.get(level)
        if readings is None:
            return LevelFinding(level, NOT_GRADED, (), level_endplates(level))
        if any(reading.types & wanted for reading in readings):
            return LevelFinding(level, QUALIFIES, readings, ())
        graded = {reading.endplate for reading in readings if reading.graded}
        if level in graded:
            missing: tuple[str, ...] = ()
        else:
            missing = tuple(endplate for endplate in level_endplates(level) if endplate not in graded)
        return LevelFinding(level, NOT_GRADED if missing else DOES_NOT_QUALIFY, readings, missing)


def level_bodies(level: str) -> tuple[str, str]:
    """The two vertebral bodies on either side of a disc level: ``"L5-S1"`` -> ``("L5", "S1")``."""
    upper, lower = (endplate_parts(name)[0] for name in level_endplates(level))
    return upper, lower


def cranial_to_caudal(bodies: Iterable[str]) -> list[str]:
    """Vertebral body names sorted from head to tail (L3, L4, L5, S1)."""
    order = {name: index for index, name in enumerate(VERTEBRAE_CAUDAL_FIRST)}
    return sorted(set(bodies), key=lambda name: -order.get(name, -1))


def is_disc_level(name: str) -> bool:
    """Whether ``name`` names two adjacent vertebrae, upper first (``"L4-L5"``, ``"L5-S1"``)."""
    upper, sep, lower = name.partition("-")
    if not sep or upper not in VERTEBRAE_CAUDAL_FIRST or lower not in VERTEBRAE_CAUDAL_FIRST:
        return False
    return VERTEBRAE_CAUDAL_FIRST.index(upper) == VERTEBRAE_CAUDAL_FIRST.index(lower) + 1


def _readings(entry: Mapping[str, Any], *, where: str) -> tuple[EndplateReading, ...]:
    level = entry["level"]
    endplates = entry.get("endplates") or []
    if not isinstance(endplates, list):
        raise SchemaError(f"{where} ('{level}'): 'endplates' must be a list, not {endplates!r}")
    if not endplates:
        return (_reading(level, level, entry, where=where),)
    readings = []
    for index, endplate in enumerate(endplates):
        place = f"{where} ('{level}') endplates[{index}]"
        if not isinstance(endplate, Mapping) or not isinstance(endplate.get("endplate"), str):
            raise SchemaError(f"{place} must be a mapping with an 'endplate' name, not {endplate!r}")
        readings.append(_reading(level, endplate["endplate"], endplate, where=place))
    return tuple(readings)


def _series(raw: Any) -> dict[str, str]:
    """``{"t1": "series 3 'SAG T1 TSE'", ...}``: which series each role was read from (as the report names it)."""
    if not isinstance(raw, Mapping):
        return {}
    named: dict[str, str] = {}
    for role, info in sorted(raw.items()):
        if not isinstance(info, Mapping):
            continue
        number, description = info.get("series_number"), str(info.get("description") or "")
        shown = f"series {number} '{description}'" if number is not None else f"'{description}'"
        if info.get("weighting"):
            shown += f" ({info['weighting']})"
        named[str(role)] = shown
    return named


def _reading(level: str, name: str, entry: Mapping[str, Any], *, where: str) -> EndplateReading:
    modic_type = entry.get("modic_type")
    if modic_type == UNDETERMINED:
        modic_type = None
    elif modic_type is not None and (isinstance(modic_type, bool) or modic_type not in MODIC_TYPES):
        raise SchemaError(f"{where}: modic_type {modic_type!r} is not one of 0, 1, 2, 3, 'undetermined' or null")
    mixed = entry.get("mixed")
    if mixed is not None and (not isinstance(mixed, str) or not _MIXED.match(mixed)):
        raise SchemaError(f"{where}: mixed {mixed!r} is not of the form '1/2' or null")
    confidence = entry.get("confidence")
    if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))):
        raise SchemaError(f"{where}: confidence {confidence!r} is not a number or null")
    return EndplateReading(level=level, endplate=name, modic_type=modic_type, mixed=mixed, confidence=confidence)
