"""Classify the series of a study and choose the sagittal T1 and T2.

Each series gets a plane (from the slice normal), a weighting (from the
SeriesDescription and from the acquisition physics: TR, TE, TI,
ScanningSequence, ScanOptions; physics wins when they disagree) and a list of
problems (localizer, derived, secondary capture, unusable geometry ...). The
sagittal T1 and T2 are then chosen among the clean candidates, and every
decision is written to a JSON-serialisable log. Patterns, thresholds and
tolerances live in ``configs/series_selection.yaml``.

Decision log: a list of dicts, each with ``event``, ``level`` (``info`` or
``warning``) and a one-line ``message``, plus per event:

* ``series`` (one per series): :meth:`SeriesClassification.to_dict` fields
  (``series_uid``, ``series_number``, ``description``, ``plane``,
  ``weighting``, ``weighting_source``, ``slices``, ``matrix`` [rows, columns],
  ``pixel_spacing_mm``, ``repetition_time_ms`` ...), ``study_uid``,
  ``status`` (``accepted``/``rejected``), ``role`` (``t1``/``t2``/None),
  ``reasons`` (why accepted or rejected) and ``warnings`` (e.g. description
  and physics disagreeing, user override of an unusual series).
* ``choice``: ``role``, ``series_uid``, ``series_number``, ``description``,
  ``how`` (``automatic``/``user``), ``other_candidates``.
* ``missing``: ``role`` without a usable series (level warning).
* ``frame_of_reference``: T1 and T2 in different frames (level warning).
* ``exam``: candidates of another exam under the same StudyInstanceUID (another
  FrameOfReferenceUID or acquisition date than the chosen series) that were
  not combined with it (level warning, ``flag`` ``exam_mixed``, ``series_uids``).

:func:`modic.io.study.load_study` adds ``scan`` (files seen, skipped files by
kind), ``load`` (duplicate slices dropped), ``resample`` (``identity``,
shapes) and ``input`` (NIfTI/MHA files) entries.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from pydicom.uid import UID

from modic.errors import InputError, SeriesSelectionError, UsageError
from modic.io.dicom_scan import SeriesIndex, StudyIndex, header_int
from modic.io.dicom_volume import frame_stacks, io_config, series_geometry
from modic.settings import IoSettings, SeriesSelectionSettings, shipped_settings

log = logging.getLogger("modic.io.series_select")

ROLES = ("t1", "t2")
BASE_WEIGHTINGS = ("T1", "T2", "PD")


@dataclass(frozen=True)
class SeriesClassification:
    """What modic thinks a series is, from its headers only.

    ``acquisition_date`` (YYYYMMDD, '' when unknown) only tells exams apart
    (:func:`other_exam`); like other identifiers it is not in :meth:`to_dict`.
    """

    series_uid: str
    number: int | None
    description: str
    modality: str
    sop_class: str
    image_type: tuple[str, ...]
    slices: int
    matrix: tuple[int, int] | None
    pixel_spacing: tuple[float, float] | None
    slice_spacing: float | None
    plane: str
    oblique_angle: float | None
    weighting: str
    weighting_source: str
    description_weighting: str | None
    physics_weighting: str | None
    fat_suppressed: bool
    contrast: bool
    repetition_time: float | None
    echo_time: float | None
    inversion_time: float | None
    frame_of_reference_uid: str
    covers_midline: bool | None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    acquisition_date: str = ""

    @property
    def usable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description of the series."""
        return {
            "series_uid": self.series_uid,
            "series_number": self.number,
            "description": self.description,
            "modality": self.modality,
            "sop_class": UID(self.sop_class).name if self.sop_class else "",
            "image_type": list(self.image_type),
            "slices": self.slices,
            "matrix": list(self.matrix) if self.matrix else None,
            "pixel_spacing_mm": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_spacing_mm": self.slice_spacing,
            "plane": self.plane,
            "oblique_angle_deg": self.oblique_angle,
            "weighting": self.weighting,
            "weighting_source": self.weighting_source,
            "description_weighting": self.description_weighting,
            "physics_weighting": self.physics_weighting,
            "fat_suppressed": self.fat_suppressed,
            "contrast": self.contrast,
            "repetition_time_ms": self.repetition_time,
            "echo_time_ms": self.echo_time,
            "inversion_time_ms": self.inversion_time,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "covers_midline": self.covers_midline,
        }


@dataclass(frozen=True)
class Selection:
    """The chosen series of one study and the decision log."""

    study: StudyIndex
    t1: SeriesIndex | None
    t2: SeriesIndex | None
    classifications: dict[str, SeriesClassification]
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def chosen(self, role: str) -> SeriesIndex | None:
        return self.t1 if role == "t1" else self.t2

    def require_any(self) -> None:
        """Raise SeriesSelectionError listing the series found when neither T1 nor T2 was chosen."""
        if self.t1 is not None or self.t2 is not None:
            return
        found = "; ".join(
            f"#{c.number} '{c.description}' {c.plane} {c.weighting}" + (f" ({c.problems[0]})" if c.problems else "")
            for c in self.classifications.values()
        )
        raise SeriesSelectionError(
            f"no usable sagittal T1 or T2 series in study {self.study.study_uid}; found: {found or 'no image series'}; "
            "pass --t1-uid/--t2-uid to choose series explicitly"
        )


def selection_config(config: SeriesSelectionSettings | None = None) -> SeriesSelectionSettings:
    """``config``, or the shipped series-selection settings (``configs/series_selection.yaml``) when None."""
    return config if config is not None else shipped_settings().series_selection


def classify_series(
    series: SeriesIndex,
    *,
    config: SeriesSelectionSettings | None = None,
    io_settings: IoSettings | None = None,
) -> SeriesClassification:
    """Plane, weighting and problems of one series, from its headers."""
    cfg = selection_config(config)
    io_cfg = io_config(io_settings)
    stack = [series.instances[i] for i in frame_stacks(series.instances)[0]]
    first = stack[0]
    description = series.description
    text = description.lower()
    patterns = cfg.description_patterns
    problems: list[str] = []
    notes: list[str] = []

    modality = series.modality
    if modality not in cfg.modalities:
        problems.append(f"modality '{modality}' is not one of {list(cfg.modalities)}")
    sop_class = str(first.get("SOPClassUID", "") or "")
    image_type = tuple(str(v).upper() for v in _values(first.get("ImageType")))
    all_types = {str(v).upper() for ds in series.instances for v in _values(ds.get("ImageType"))}

    localizer_types = sorted(all_types & {str(v).upper() for v in cfg.image_type.localizer})
    if localizer_types:
        problems.append(f"localizer (ImageType {'/'.join(localizer_types)})")
    normals = _normals(series)
    planes = _orientation_clusters(normals, degrees=float(cfg.plane.same_orientation_deg))
    tolerance = float(cfg.plane.oblique_tolerance_deg)
    plane_names = ", ".join(sorted({plane_of(n, tolerance_deg=tolerance)[0] for n in planes}))
    if _largest_angle(planes) > float(cfg.plane.localizer_angle_deg):
        problems.append(f"localizer ({len(planes)} slice orientations in one series: {plane_names})")
    elif len(planes) > 1:
        problems.append(
            f"{len(planes)} slice blocks with different angulations in one series ({plane_names}); not one volume"
        )
    if _matches(text, patterns.localizer) and not localizer_types:
        problems.append(f"localizer (description '{description}')")
    if sop_class in cfg.secondary_capture_sop_classes:
        problems.append(f"secondary capture ({UID(sop_class).name})")
    elif image_type[:1] and image_type[0] in cfg.image_type.derived_value_1:
        problems.append(f"derived image (ImageType {'/'.join(image_type)})")
    elif len(image_type) > 1 and image_type[1] in cfg.image_type.derived_value_2:
        problems.append(f"secondary image (ImageType {'/'.join(image_type)})")
    elif _matches(text, patterns.derived):
        problems.append(f"derived image (description '{description}')")
    if sop_class in cfg.unsupported_sop_classes:
        problems.append(f"unsupported SOP class: {cfg.unsupported_sop_classes[sop_class]}")
    elif sop_class not in cfg.image_sop_classes and sop_class not in cfg.secondary_capture_sop_classes:
        problems.append(f"SOP class '{UID(sop_class).name or sop_class}' is not an MR image")
    if series.corrupt_files:
        example = series.corrupt_files[0]
        problems.append(
            f"{len(series.corrupt_files)} corrupt file(s) in the series (e.g. '{example.path}': {example.reason})"
        )

    plane, angle = ("unknown", None)
    if planes:
        plane, angle = plane_of(planes[0], tolerance_deg=tolerance)

    tr = _float(first.get("RepetitionTime"))
    te = _float(first.get("EchoTime"))
    ti = _float(first.get("InversionTime"))
    weighting, source, desc_weighting, phys_weighting, fat, weighting_notes = classify_weighting(
        description=text,
        repetition_time=tr,
        echo_time=te,
        inversion_time=ti,
        scanning_sequence=[str(v).upper() for v in _values(first.get("ScanningSequence"))],
        scan_options=[str(v).upper() for v in _values(first.get("ScanOptions"))],
        config=cfg,
    )
    notes.extend(weighting_notes)
    contrast = bool(str(first.get("ContrastBolusAgent", "") or "").strip()) or _matches(text, patterns.contrast)

    rows, columns = header_int(first, "Rows"), header_int(first, "Columns")
    matrix = (rows, columns) if rows is not None and columns is not None else None
    spacing = _float_pair(first.get("PixelSpacing"))
    slice_spacing = None
    covers_midline = None
    if not problems:
        try:
            geometry = series_geometry(series.instances, label=series.label, config=io_cfg)
        except InputError as exc:
            problems.append(str(exc))
        else:
            slice_spacing = geometry.slice_spacing
            covers_midline = _covers_midline(geometry.affine, geometry.shape)
            if geometry.stacks > 1:
                notes.append(
                    f"{geometry.stacks} stacks of frames at the same positions (echoes, time points or image types); "
                    "the first is read"
                )
            if geometry.duplicates:
                notes.append(
                    f"{len(geometry.duplicates)} file(s) share a slice position with another "
                    "(dropped at loading if their pixels are identical)"
                )
    return SeriesClassification(
        series_uid=series.series_uid,
        number=series.number,
        description=description,
        modality=modality,
        sop_class=sop_class,
        image_type=image_type,
        slices=len(stack),
        matrix=matrix,
        pixel_spacing=spacing,
        slice_spacing=slice_spacing,
        plane=plane,
        oblique_angle=angle,
        weighting=weighting,
        weighting_source=source,
        description_weighting=desc_weighting,
        physics_weighting=phys_weighting,
        fat_suppressed=fat,
        contrast=contrast,
        repetition_time=tr,
        echo_time=te,
        inversion_time=ti,
        frame_of_reference_uid=str(first.get("FrameOfReferenceUID", "") or ""),
        covers_midline=covers_midline,
        problems=tuple(problems),
        notes=tuple(notes),
        acquisition_date=acquisition_date(first),
    )


def acquisition_date(ds: Any) -> str:
    """The date a series was acquired (AcquisitionDate, AcquisitionDateTime, else SeriesDate), '' when unknown."""
    for keyword in ("AcquisitionDate", "AcquisitionDateTime", "SeriesDate"):
        text = "".join(ch for ch in str(ds.get(keyword, "") or "") if ch.isdigit())
        if len(text) >= 8:
            return text[:8]
    return ""


def other_exam(a: SeriesClassification, b: SeriesClassification) -> str:
    """Why ``a`` and ``b`` come from different exams ('' when they may come from one).

    Series of one exam share a FrameOfReferenceUID and an acquisition date; re-used
    StudyInstanceUIDs and merged archives put several exams under one study.
    Unknown values (empty) never separate two series.
    """
    reasons = []
    if a.frame_of_reference_uid and b.frame_of_reference_uid and a.frame_of_reference_uid != b.frame_of_reference_uid:
        reasons.append("another frame of reference (FrameOfReferenceUID)")
    if a.acquisition_date and b.acquisition_date and a.acquisition_date != b.acquisition_date:
        reasons.append("another acquisition date")  # dates identify patients: never in outputs
    return " and ".join(reasons)


def plane_of(normal: ArrayLike, *, tolerance_deg: float) -> tuple[str, float]:
    """``('sagittal' | 'coronal' | 'axial' | 'oblique', angle to the nearest patient axis in degrees)``."""
    unit = np.abs(np.asarray(normal, dtype=float))
    unit /= np.linalg.norm(unit)
    axis = int(np.argmax(unit))
    angle = math.degrees(math.acos(min(1.0, float(unit[axis]))))
    if angle > tolerance_deg:
        return "oblique", round(angle, 2)
    return ("sagittal", "coronal", "axial")[axis], round(angle, 2)


def classify_weighting(
    *,
    description: str,
    repetition_time: float | None,
    echo_time: float | None,
    inversion_time: float | None,
    scanning_sequence: Sequence[str],
    scan_options: Sequence[str],
    config: SeriesSelectionSettings | None = None,
) -> tuple[str, str, str | None, str | None, bool, list[str]]:
    """Weighting of a series from its description and its physics.

    Returns:
        ``(weighting, source, description_weighting, physics_weighting,
        fat_suppressed, notes)`` where ``weighting`` is one of T1, T1_FS, T2,
        T2_FS, PD, PD_FS, STIR, FLAIR, T2STAR or unknown; ``source`` says what
        decided it (``physics``, ``description``, ``physics+description`` or
        ``none``) and ``notes`` explain disagreements (physics wins).
    """
    cfg = selection_config(config)
    patterns = cfg.description_patterns
    text = description.lower()
    notes: list[str] = []

    desc_stir = _matches(text, patterns.stir)
    desc_fs = _matches(text, patterns.fat_suppressed)
    desc_base: str | None = None
    if _matches(text, patterns.t2_star):
        desc_base = "T2STAR"
    elif _matches(text, patterns.t1):
        desc_base = "T1"
    elif _matches(text, patterns.flair):
        desc_base = "FLAIR"
    elif _matches(text, patterns.t2):
        desc_base = "T2"
    elif _matches(text, patterns.pd):
        desc_base = "PD"
    desc_weighting = "STIR" if desc_stir else desc_base

    phys, phys_reason = physics_weighting(
        repetition_time=repetition_time,
        echo_time=echo_time,
        inversion_time=inversion_time,
        scanning_sequence=scanning_sequence,
        config=cfg,
    )
    fs_options = sorted(set(scan_options) & {str(v).upper() for v in cfg.physics.fat_sat_scan_options})

    stir = False
    base: str | None
    if phys == "STIR":
        stir = True
        base = None
        source = "physics+description" if desc_stir else "physics"
        if desc_weighting not in (None, "STIR"):
            notes.append(f"description suggests {desc_weighting} but {phys_reason}: physics wins (STIR)")
    elif phys is not None:
        base = phys
        source = "physics+description" if desc_base == phys else "physics"
        if desc_base is not None and desc_base != phys:
            notes.append(f"description suggests {desc_base} but {phys_reason}: physics wins ({phys})")
        if desc_stir:
            if phys == "T1" or inversion_time is not None:
                notes.append(f"description suggests STIR but {phys_reason}: physics wins ({phys})")
            else:
                stir = True
                notes.append(f"description says STIR; {phys_reason} gives no inversion time to contradict it")
    else:
        base = desc_base
        stir = desc_stir
        source = "description" if desc_weighting else "none"
        if phys_reason:
            notes.append(f"physics undecided ({phys_reason})")

    fat = stir or bool(fs_options) or desc_fs
    if fs_options and not desc_fs and not stir:
        notes.append(f"ScanOptions {'/'.join(fs_options)} mean fat saturation although the description does not say so")
    if stir:
        weighting = "STIR"
    elif base is None:
        weighting = "unknown"
    elif base in BASE_WEIGHTINGS and fat:
        weighting = f"{base}_FS"
    else:
        weighting = base
    return weighting, source, desc_weighting, phys, fat, notes


def physics_weighting(
    *,
    repetition_time: float | None,
    echo_time: float | None,
    inversion_time: float | None,
    scanning_sequence: Sequence[str],
    config: SeriesSelectionSettings | None = None,
) -> tuple[str | None, str]:
    """Weighting implied by TR/TE/TI and the sequence type, or None, with the reason in words."""
    phys = selection_config(config).physics
    sequence = {s.upper() for s in scanning_sequence}
    inversion = "IR" in sequence or (inversion_time is not None and inversion_time > 0)
    if inversion:
        if inversion_time is None or inversion_time <= 0:
            return None, "inversion recovery without InversionTime"
        for name, (low, high) in (
            ("STIR", phys.stir_inversion_time),
            ("T1", phys.t1_inversion_time),
            ("FLAIR", phys.flair_inversion_time),
        ):
            if low <= inversion_time <= high:
                return name, f"inversion time {inversion_time:g} ms is {name}-like"
        return None, f"inversion time {inversion_time:g} ms is outside the STIR, T1 and FLAIR ranges"
    if sequence and not sequence & {"SE"}:
        return None, f"ScanningSequence {'/'.join(sorted(sequence))} is not spin echo"
    if repetition_time is None or echo_time is None:
        return None, "no RepetitionTime/EchoTime"
    tr, te = repetition_time, echo_time
    if tr <= phys.t1.max_repetition_time and te <= phys.t1.max_echo_time:
        return "T1", f"TR {tr:g} ms / TE {te:g} ms is T1-weighted"
    if tr >= phys.t2.min_repetition_time and te >= phys.t2.min_echo_time:
        return "T2", f"TR {tr:g} ms / TE {te:g} ms is T2-weighted"
    if tr >= phys.pd.min_repetition_time and te <= phys.pd.max_echo_time:
        return "PD", f"TR {tr:g} ms / TE {te:g} ms is PD-weighted"
    return None, f"TR {tr:g} ms / TE {te:g} ms is between the T1, T2 and PD ranges"


def select_series(
    study: StudyIndex,
    *,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    config: SeriesSelectionSettings | None = None,
    io_settings: IoSettings | None = None,
) -> Selection:
    """Choose the sagittal T1 and T2 of ``study`` and log every decision.

    Automatic choice among clean candidates (right plane and weighting, no
    problems) prefers, in order: pre-contrast, covering the midline, more
    slices, finer pixel spacing, later series number (repeats), and the same
    FrameOfReferenceUID as the other chosen series. T1 and T2 always come
    from one exam (:func:`other_exam`): a T1 with a T2 of its own exam is
    preferred, and candidates of another exam are set aside (decision
    ``exam``).

    Raises:
        SeriesSelectionError: ``t1_uid``/``t2_uid`` is not a series of the study.
        UsageError: the same UID is given for T1 and T2.
        InputError: the study's images belong to more than one patient (PatientID), or
            the T1 and T2 given by UID come from different exams.
    """
    cfg = selection_config(config)
    io_cfg = io_config(io_settings)
    if t1_uid and t1_uid == t2_uid:
        raise UsageError(f"the same series '{t1_uid}' was given as T1 and T2; give two different SeriesInstanceUIDs")
    _require_one_patient(study)
    overrides = {"t1": t1_uid, "t2": t2_uid}
    for role, uid in overrides.items():
        if uid and study.get(uid) is None:
            available = ", ".join(f"{s.series_uid} (#{s.number} '{s.description}')" for s in study.series)
            raise SeriesSelectionError(
                f"{role}_uid '{uid}' is not a series of study {study.study_uid}; available series: {available}"
            )

    classes = {s.series_uid: classify_series(s, config=cfg, io_settings=io_cfg) for s in study.series}
    wanted = {
        "t1": {w.value for w in cfg.selection.t1_weightings},
        "t2": {w.value for w in cfg.selection.t2_weightings},
    }
    plane = cfg.selection.plane.value
    overridden = {uid for uid in overrides.values() if uid}
    candidates = {
        role: [
            c
            for c in classes.values()
            if c.usable and c.plane == plane and c.weighting in wanted[role] and c.series_uid not in overridden
        ]
        for role in ROLES
    }

    def rank(role: str, other: SeriesClassification | None) -> list[SeriesClassification]:
        return sorted(candidates[role], key=lambda c: _rank_key(c, other), reverse=True)

    def pick(role: str, ranked: list[SeriesClassification]) -> SeriesClassification | None:
        uid = overrides[role]
        return classes[uid] if uid else (ranked[0] if ranked else None)

    if t1_uid and t2_uid and (reason := other_exam(classes[t2_uid], classes[t1_uid])):
        raise InputError(
            f"the chosen T1 {study.get(t1_uid).label} and T2 {study.get(t2_uid).label} "  # type: ignore[union-attr]
            f"come from different exams under one StudyInstanceUID (the T2 has {reason}); choose a T1 and a T2 of "
            "one exam"
        )
    provisional_t2 = pick("t2", rank("t2", None))
    ranks = {"t1": rank("t1", provisional_t2)}
    if not overrides["t1"] and not overrides["t2"]:
        # Prefer a T1 that has a T2 of its own exam (a repeat from another exam would leave it alone).
        paired = [c for c in ranks["t1"] if any(not other_exam(t2, c) for t2 in candidates["t2"])]
        ranks["t1"] = paired + [c for c in ranks["t1"] if c not in paired]
    chosen: dict[str, SeriesClassification | None] = {"t1": pick("t1", ranks["t1"])}
    ranks["t2"] = rank("t2", chosen["t1"])
    separated: list[tuple[SeriesClassification, str]] = []
    t1_pick = chosen["t1"]
    if t1_pick is not None and not overrides["t2"]:
        separated = [(c, reason) for c in ranks["t2"] if (reason := other_exam(c, t1_pick))]
        ranks["t2"] = [c for c in ranks["t2"] if c not in {s for s, _ in separated}]
    elif overrides["t2"] and not overrides["t1"]:
        t2_pick = classes[overrides["t2"]]  # type: ignore[index]
        separated = [(c, reason) for c in ranks["t1"] if (reason := other_exam(c, t2_pick))]
        ranks["t1"] = [c for c in ranks["t1"] if c not in {s for s, _ in separated}]
        chosen["t1"] = pick("t1", ranks["t1"])
    chosen["t2"] = pick("t2", ranks["t2"])

    decisions: list[dict[str, Any]] = []
    exam_reasons = {c.series_uid: reason for c, reason in separated}
    for series in study.series:
        c = classes[series.series_uid]
        entry = _series_decision(
            c, study=study, chosen=chosen, ranks=ranks, overrides=overrides, plane=plane, wanted=wanted
        )
        if c.series_uid in exam_reasons:
            entry["reasons"] = [f"another exam than the chosen series: {exam_reasons[c.series_uid]}"]
            entry["message"] = f"series {c.number} '{c.description}': rejected ({entry['reasons'][0]})"
        decisions.append(entry)
    for role in ROLES:
        picked = chosen[role]
        if picked is None:
            message = f"no usable {plane} {role.upper()} series in the study; the analysis continues without it"
            decisions.append({"event": "missing", "level": "warning", "role": role, "message": message})
            continue
        how = "user" if overrides[role] else "automatic"
        others = [c.series_uid for c in ranks[role] if c.series_uid != picked.series_uid]
        message = f"{role.upper()}: series {picked.number} '{picked.description}' ({how} choice)"
        if how == "automatic" and others:
            message += f", best of {len(ranks[role])} candidates"
        decisions.append(
            {
                "event": "choice",
                "level": "info",
                "role": role,
                "series_uid": picked.series_uid,
                "series_number": picked.number,
                "description": picked.description,
                "how": how,
                "other_candidates": others,
                "message": message,
            }
        )
    if separated:
        c, reason = separated[0]
        kept = chosen["t1"] if chosen["t1"] is not None and c.series_uid != chosen["t1"].series_uid else chosen["t2"]
        kept_text = f"series {kept.number} '{kept.description}'" if kept is not None else "the chosen series"
        message = (
            f"{len(separated)} candidate series belong to another exam under the same StudyInstanceUID (e.g. series "
            f"{c.number} '{c.description}': {reason}); they are not combined with {kept_text}"
        )
        decisions.append(
            {
                "event": "exam",
                "level": "warning",
                "flag": "exam_mixed",
                "series_uids": [item.series_uid for item, _ in separated],
                "message": message,
            }
        )
    if chosen["t1"] is not None and chosen["t2"] is not None:
        if chosen["t1"].frame_of_reference_uid != chosen["t2"].frame_of_reference_uid:
            message = (
                "T1 and T2 have different FrameOfReferenceUIDs; they are aligned by their patient coordinates, "
                "which is only right if the patient did not move between them"
            )
            decisions.append({"event": "frame_of_reference", "level": "warning", "message": message})

    def series_of(role: str) -> SeriesIndex | None:
        picked = chosen[role]
        return study.get(picked.series_uid) if picked is not None else None

    return Selection(study=study, t1=series_of("t1"), t2=series_of("t2"), classifications=classes, decisions=decisions)


def _require_one_patient(study: StudyIndex) -> None:
    """Refuse a study whose images carry different (non-empty) PatientIDs: one StudyInstanceUID, several patients.

    The message names the series, never the IDs (they identify patients).
    """
    first_series: dict[str, SeriesIndex] = {}
    for series in study.series:
        for ds in series.instances:
            patient_id = str(ds.get("PatientID", "") or "").strip()
            if patient_id:
                first_series.setdefault(patient_id, series)
    if len(first_series) > 1:
        a, b = list(first_series.values())[:2]
        where = f"{a.label} and {b.label}" if a is not b else a.label
        raise InputError(
            f"study {study.study_uid} holds images of {len(first_series)} patients (PatientID differs in {where}); "
            "the export mixes patients under one StudyInstanceUID: export each patient's study on its own"
        )


def _series_decision(
    c: SeriesClassification,
    *,
    study: StudyIndex,
    chosen: Mapping[str, SeriesClassification | None],
    ranks: Mapping[str, list[SeriesClassification]],
    overrides: Mapping[str, str | None],
    plane: str,
    wanted: Mapping[str, set[str]],
) -> dict[str, Any]:
    reasons: list[str] = []
    warnings: list[str] = list(c.notes)
    role = next((r for r in ROLES if chosen[r] is not None and chosen[r].series_uid == c.series_uid), None)  # type: ignore[union-attr]
    if role is not None:
        status = "accepted"
        if overrides[role] == c.series_uid:
            reasons.append(f"chosen as {role.upper()} by the user (SeriesInstanceUID override)")
            mismatch = list(c.problems)
            if c.plane != plane:
                mismatch.append(f"plane is {c.plane}, not {plane}")
            if c.weighting not in wanted[role]:
                mismatch.append(f"weighting looks like {c.weighting}, not {role.upper()}")
            warnings.extend(f"user override despite: {m}" for m in mismatch)
        else:
            reasons.append(f"best {plane} {role.upper()} of {len(ranks[role])} candidate(s)")
    else:
        status = "rejected"
        reasons.extend(c.problems)
        if not c.problems:
            if c.plane != plane:
                angle = f", {c.oblique_angle:g} deg from the nearest axis" if c.oblique_angle is not None else ""
                reasons.append(f"plane is {c.plane}{angle}, not {plane}")
            elif c.weighting not in wanted["t1"] | wanted["t2"]:
                reasons.append(_weighting_reason(c.weighting))
            else:
                for r in ROLES:
                    if c in ranks[r]:
                        reasons.append(_outranked(c, ranks[r], chosen[r], role=r, overrides=overrides))
        if not reasons:
            reasons.append("not chosen")
    level = "warning" if (role is not None and any(w.startswith("user override") for w in warnings)) else "info"
    entry: dict[str, Any] = {
        "event": "series",
        "level": level,
        "study_uid": study.study_uid,
        **c.to_dict(),
        "status": status,
        "role": role,
        "reasons": reasons,
        "warnings": warnings,
    }
    entry["message"] = f"series {c.number} '{c.description}': {status}" + (
        f" ({'; '.join(reasons)})" if reasons else ""
    )
    return entry


def _weighting_reason(weighting: str) -> str:
    if weighting == "STIR":
        return "weighting STIR: an inversion-recovery fat-suppressed series is not used as T2"
    if weighting.endswith("_FS"):
        return f"weighting {weighting}: fat-suppressed series are not used as T1 or T2"
    if weighting == "unknown":
        return "weighting unknown: neither the description nor TR/TE/TI identify T1 or T2"
    return f"weighting {weighting}: neither T1 nor T2"


def _outranked(
    c: SeriesClassification,
    ranked: list[SeriesClassification],
    winner: SeriesClassification | None,
    *,
    role: str,
    overrides: Mapping[str, str | None],
) -> str:
    if winner is None:
        return f"{role.upper()} candidate not chosen"
    if overrides[role]:
        return f"{role.upper()} candidate not chosen: the user chose series {winner.number} '{winner.description}'"
    position = ranked.index(c) + 1
    head = (
        f"{role.upper()} candidate ranked {position} of {len(ranked)} "
        f"behind series {winner.number} '{winner.description}'"
    )
    if c.contrast != winner.contrast:
        return f"{head}: post-contrast (pre-contrast preferred)"
    if c.covers_midline != winner.covers_midline:
        return f"{head}: does not cover the midline"
    if c.slices != winner.slices:
        return f"{head}: fewer slices ({c.slices} vs {winner.slices})"
    if _pixel_area(c) != _pixel_area(winner):
        return f"{head}: coarser pixel spacing ({_spacing_text(c)} vs {_spacing_text(winner)} mm)"
    if c.number != winner.number:
        return f"{head}: earlier series number ({c.number} vs {winner.number}; the later repeat is preferred)"
    return f"{head}: different FrameOfReferenceUID from the other chosen series, or tied"


def _rank_key(c: SeriesClassification, other: SeriesClassification | None) -> tuple[Any, ...]:
    same_frame = other is not None and c.frame_of_reference_uid == other.frame_of_reference_uid
    return (
        not c.contrast,
        bool(c.covers_midline),
        c.slices,
        -_pixel_area(c),
        c.number if c.number is not None else -1,
        same_frame,
    )


def _pixel_area(c: SeriesClassification) -> float:
    return round(c.pixel_spacing[0] * c.pixel_spacing[1], 6) if c.pixel_spacing else math.inf


def _spacing_text(c: SeriesClassification) -> str:
    return "x".join(f"{v:.3g}" for v in c.pixel_spacing) if c.pixel_spacing else "?"


def _covers_midline(affine: np.ndarray, shape: tuple[int, int, int]) -> bool:
    """Whether the slab spans the patient's left-right midline (x = 0, the scanner isocentre)."""
    centre = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0.0, 1.0])
    x_first = float((affine @ centre)[0])
    x_last = float((affine @ (centre + np.array([0, 0, shape[2] - 1, 0])))[0])
    half = abs(float(affine[0, 2])) / 2
    return min(x_first, x_last) - half <= 0.0 <= max(x_first, x_last) + half


def _normals(series: SeriesIndex) -> list[np.ndarray]:
    normals = []
    for ds in series.instances:
        values = [_float(v) for v in _values(ds.get("ImageOrientationPatient"))]
        if len(values) != 6 or any(v is None for v in values):
            continue
        normal = np.cross(np.asarray(values[:3], dtype=float), np.asarray(values[3:], dtype=float))
        norm = np.linalg.norm(normal)
        if norm > 0 and np.isfinite(norm):
            normals.append(normal / norm)
    return normals


def _largest_angle(normals: list[np.ndarray]) -> float:
    """Largest angle in degrees between two slice normals (0 for fewer than two)."""
    cosines = [abs(float(a @ b)) for index, a in enumerate(normals) for b in normals[index + 1 :]]
    return math.degrees(math.acos(min(1.0, min(cosines)))) if cosines else 0.0


def _orientation_clusters(normals: list[np.ndarray], *, degrees: float) -> list[np.ndarray]:
    """Distinct slice orientations (normals more than ``degrees`` apart); the most common first."""
    limit = math.cos(math.radians(degrees))
    clusters: list[tuple[np.ndarray, int]] = []
    for normal in normals:
        for index, (centre, count) in enumerate(clusters):
            if abs(float(normal @ centre)) >= limit:
                clusters[index] = (centre, count + 1)
                break
        else:
            clusters.append((normal, 1))
    return [centre for centre, _ in sorted(clusters, key=lambda item: -item[1])]


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _matches(text: str, patterns: Sequence[str]) -> bool:
    return any(_compiled(p).search(text) for p in patterns)


def _values(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        return list(value)
    return [value]


def _float(value: Any) -> float | None:
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _float_pair(value: Any) -> tuple[float, float] | None:
    values = [_float(v) for v in _values(value)]
    if len(values) != 2 or any(v is None for v in values):
        return None
    return (values[0], values[1])  # type: ignore[return-value]
