"""``report.json``: the versioned, machine-readable result of one analysis.

The schema is documented in ``docs/report.md`` and ``docs/report.schema.json``.
Version rules: the minor version grows when fields are added; a different
major version cannot be read by this modic (:func:`read_report` refuses it).
Floats are rounded so that the same input gives byte-identical files apart
from ``created``.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from importlib import metadata
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modic import RESEARCH_NOTICE, __version__
from modic.report.privacy import input_paths, scrub, study_key
from modic.report.schema import SCHEMA_NAME, SCHEMA_VERSION, read_report
from modic.results import UNDETERMINED, EndplateGrade, LevelGrade, StudyAnalysis

if TYPE_CHECKING:
    from modic.classification.disc import DiscFeatures
    from modic.io.study import StudyImages
    from modic.levels import SpineAnatomy

__all__ = ["SCHEMA_NAME", "SCHEMA_VERSION", "build_report", "dumps", "read_report"]

DIGITS = 4


def _installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, read from its metadata: recorded without importing it."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def build_report(
    analysis: StudyAnalysis,
    *,
    keep_identifiers: bool = False,
    candidacy: Mapping[str, Any] | None = None,
    created: dt.datetime | None = None,
) -> dict[str, Any]:
    """The report dictionary of ``analysis`` (identifiers removed unless ``keep_identifiers``)."""
    images = analysis.images
    paths = [*input_paths(images), *_input_uids(images)]
    anatomy = analysis.anatomy
    study: dict[str, Any] = {"key": study_key(images), "single_slice": anatomy.single_slice}
    if keep_identifiers:
        study.update(_identifiers(analysis))
    report = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "research_notice": RESEARCH_NOTICE,
        "created": (created or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": {
            "name": "modic",
            "version": __version__,
            "python": platform.python_version(),
            "torch": _installed_version("torch"),
            "monai": _installed_version("monai"),
        },
        "models": analysis.models,
        "study": study,
        "series": {
            role: scrub(info.to_dict(), paths=paths, keep_identifiers=keep_identifiers)
            for role, info in sorted(images.series.items())
        },
        "anatomy": {
            "size_unit": anatomy.size_unit,
            "vertebrae": [v.as_dict() for v in anatomy.vertebrae],
            "discs": [d.as_dict() for d in anatomy.discs],
        },
        "levels": [_level(level, anatomy) for level in analysis.levels],
        "warnings": [flag.as_dict() for flag in analysis.warnings],
        "input_decisions": scrub(images.decisions, paths=paths, keep_identifiers=keep_identifiers),
        "settings": _settings(analysis),
        "candidacy": dict(candidacy) if candidacy is not None else None,
    }
    return _rounded(report)


REPORTED_SETTINGS = ("levels", "endplates", "classification")
"""The sections of the analysis settings that report.json records (``settings``), as the YAML files write them."""


def _settings(analysis: StudyAnalysis) -> dict[str, Any]:
    effective = analysis.config.to_dict()
    return {section: effective[section] for section in REPORTED_SETTINGS}


def _input_uids(images: StudyImages) -> list[str]:
    """Study, series and frame-of-reference UIDs of the input, which de-identified outputs must not show.

    The decision log quotes some of them as values (e.g. the study UIDs of a folder
    scan), where removing identifying keys cannot catch them.
    """
    uids = {images.study_uid} if images.study_uid else set()
    for info in images.series.values():
        uids.update(uid for uid in (info.series_uid, info.frame_of_reference_uid) if uid)
    return sorted(uids, key=len, reverse=True)


def _identifiers(analysis: StudyAnalysis) -> dict[str, Any]:
    headers = analysis.images.t1_source_headers or analysis.images.t2_source_headers
    data: dict[str, Any] = {"study_instance_uid": analysis.images.study_uid}
    if headers:
        first = headers[0]
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyDate"):
            value = first.get(keyword)
            data[keyword] = str(value) if value is not None else None
    return data


def _type(modic_type: int | None) -> int | str:
    """A Modic type as reports write it: 0-3, or ``"undetermined"``."""

    return UNDETERMINED if modic_type is None else modic_type


def _type_probabilities(probabilities: dict[int, float] | None) -> dict[str, float] | None:
    """``{"0": p, "1": p, "2": p, "3": p}``, or None without a type model or without both sequences."""
    return None if probabilities is None else {str(k): v for k, v in sorted(probabilities.items())}


def _level(level: LevelGrade, anatomy: SpineAnatomy) -> dict[str, Any]:
    return {
        "level": level.level,
        "modic_type": _type(level.modic_type),
        "mixed": level.mixed,
        "confidence": level.confidence,
        "presence_probability": level.presence_probability,
        "changed": level.changed,
        "type_probabilities": _type_probabilities(level.type_probabilities),
        "disc": _disc(next((g.features.disc for g in level.endplates if g.features.disc is not None), None)),
        "endplates": [_endplate(grade, anatomy) for grade in level.endplates],
    }


def _disc(disc: DiscFeatures | None) -> dict[str, Any] | None:
    """The degeneration measures of a level's disc, as the presence model reads them."""
    if disc is None:
        return None
    signal = {
        name: None if stats is None else {
            "ratio_median": stats.ratio_median,
            "ratio_p90": stats.ratio_p90,
            "p90_to_brightest_disc": stats.patient_ratio_p90,
        }
        for name, stats in (("t1", disc.t1), ("t2", disc.t2))
    }
    return {"height_ratio": disc.height_ratio, "height_to_tallest_disc": disc.patient_height_ratio, "signal": signal}


def _endplate(grade: EndplateGrade, anatomy: SpineAnatomy) -> dict[str, Any]:
    features = grade.features
    region = anatomy.endplate(grade.endplate)
    signal: dict[str, Any] = {}
    for name, stats in (("t1", features.t1), ("t2", features.t2)):
        signal[name] = None if stats is None else {
            "ratio_median": stats.ratio_median,
            "ratio_p25": stats.ratio_p25,
            "ratio_p75": stats.ratio_p75,
            "ratio_p10": stats.ratio_p10,
            "ratio_p90": stats.ratio_p90,
            "low_fraction": stats.low_fraction,
            "high_fraction": stats.high_fraction,
            "ratio_to_patient_marrow": stats.patient_ratio,
        }
    return {
        "endplate": grade.endplate,
        "modic_type": _type(grade.modic_type),
        "mixed": grade.mixed,
        "confidence": grade.confidence,
        "presence_probability": grade.presence_probability,
        "type_probabilities": _type_probabilities(grade.type_probabilities),
        "method": grade.method,
        "scores": {str(k): v for k, v in sorted(grade.scores.items())},
        "extent": {"region_fraction": grade.region_fraction, "height_fraction": grade.height_fraction},
        "signal": signal,
        "pattern_fractions": {str(k): v for k, v in sorted(features.pattern_fractions.items())},
        "region": None if region is None else {
            "label": region.label,
            "voxels": region.n_voxels,
            f"size_{anatomy.size_unit}": region.volume_mm,
            "depth_mm": region.depth_mm,
            "body_height_mm": region.body_height_mm,
            "reference_label": region.reference_label,
            "reference_voxels": region.reference_voxels,
            "reference_part": features.reference_part,
            "measured_from_disc": region.from_disc,
        },
        "note": grade.note,
    }


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS) if value == value else None
    if isinstance(value, Mapping):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return _rounded(value.item())
    return value


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
