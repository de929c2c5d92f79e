"""Load the sagittal T1 and T2 of one study, from a DICOM folder or from NIfTI/MHA files.

:func:`load_study` is the entry point of the pipeline: discovery
(:mod:`~modic.io.dicom_scan`), series choice (:mod:`~modic.io.series_select`),
volume building (:mod:`~modic.io.dicom_volume`) and resampling of the T2 onto
the T1 grid (:mod:`~modic.io.resample`). Everything decided on the way is in
:attr:`StudyImages.decisions`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from modic.errors import InputError, SeriesSelectionError, UsageError
from modic.io.dicom_scan import FolderScan, SkippedFile, StudyIndex, scan_folder
from modic.io.dicom_volume import check_memory, io_config, load_series
from modic.io.formats import read_volume
from modic.io.resample import resample_to
from modic.io.series_select import SeriesClassification, plane_of, select_series, selection_config
from modic.io.volume import Volume
from modic.settings import InputCheckSettings, IoSettings, SeriesSelectionSettings, shipped_settings

log = logging.getLogger("modic.io.study")


@dataclass(frozen=True)
class SeriesInfo:
    """What was read for one role (T1 or T2)."""

    role: str
    source: str
    path: str
    series_uid: str | None
    series_number: int | None
    description: str
    plane: str
    weighting: str
    repetition_time: float | None
    echo_time: float | None
    inversion_time: float | None
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    frame_of_reference_uid: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "source": self.source,
            "path": self.path,
            "series_uid": self.series_uid,
            "series_number": self.series_number,
            "description": self.description,
            "plane": self.plane,
            "weighting": self.weighting,
            "repetition_time_ms": self.repetition_time,
            "echo_time_ms": self.echo_time,
            "inversion_time_ms": self.inversion_time,
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing),
            "frame_of_reference_uid": self.frame_of_reference_uid,
        }


@dataclass(frozen=True)
class StudyImages:
    """The images of one study, ready for preprocessing.

    Attributes:
        t1: sagittal T1 volume, or None when the study has none.
        t2: sagittal T2 on the T1 grid when both exist (else its native grid), or None.
        t2_native: the T2 on its own grid.
        decisions: the decision log: JSON-serialisable dicts, each with
            ``event``, ``level`` and ``message`` (see :mod:`modic.io.series_select`).
        study_uid: StudyInstanceUID (None for NIfTI/MHA input).
        series: :class:`SeriesInfo` of the chosen series by role (``"t1"``, ``"t2"``).
        t1_source_headers: header datasets (no pixel data) of the T1 files in
            slice order, for DICOM SEG/SR referencing the source; empty for files.
        t2_source_headers: the same for the T2.
        skipped_files: files under the study folder that were not used, and why.
    """

    t1: Volume | None
    t2: Volume | None
    t2_native: Volume | None
    decisions: list[dict[str, Any]]
    study_uid: str | None
    series: dict[str, SeriesInfo]
    t1_source_headers: tuple[Dataset, ...] = ()
    t2_source_headers: tuple[Dataset, ...] = ()
    skipped_files: tuple[SkippedFile, ...] = field(default=())


def load_study(
    path: str | Path | None = None,
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    config: IoSettings | None = None,
    selection: SeriesSelectionSettings | None = None,
    checks: InputCheckSettings | None = None,
) -> StudyImages:
    """Read the sagittal T1 and T2 of one study.

    Args:
        path: a DICOM study folder (any layout; one StudyInstanceUID).
        t1: a T1 NIfTI/MHA file, instead of ``path``.
        t2: a T2 NIfTI/MHA file, instead of ``path``.
        t1_uid: SeriesInstanceUID of the T1 in ``path`` (overrides the automatic choice).
        t2_uid: SeriesInstanceUID of the T2 in ``path``.
        config: the io settings (``io``); the shipped ones by default.
        selection: the series-selection settings (``series_selection``).
        checks: the input-check settings (``input_checks``).

    Raises:
        UsageError: a wrong combination of arguments.
        InputError: no DICOM images, several studies in the folder, unreadable data.
        SeriesSelectionError: neither a T1 nor a T2 could be chosen, or a wrong UID.
        MissingCodecError: compressed pixel data without decoder.
    """
    io_cfg = io_config(config)
    sel_cfg = selection_config(selection)
    checks = checks if checks is not None else shipped_settings().input_checks
    if path is not None and (t1 is not None or t2 is not None):
        raise UsageError("give either a DICOM study folder or T1/T2 files (--t1/--t2), not both")
    if path is None and t1 is None and t2 is None:
        raise UsageError("give a DICOM study folder or at least one of the T1/T2 files (--t1/--t2)")
    if path is None and (t1_uid or t2_uid):
        raise UsageError("--t1-uid/--t2-uid choose series inside a DICOM study folder; give the folder too")
    if path is not None:
        return _load_dicom_study(
            Path(path), t1_uid=t1_uid, t2_uid=t2_uid, io_cfg=io_cfg, sel_cfg=sel_cfg, checks=checks
        )
    return _load_files(t1=t1, t2=t2, io_cfg=io_cfg, sel_cfg=sel_cfg, checks=checks)


def single_study(scan: FolderScan) -> StudyIndex:
    """The only study of a folder scan; InputError when there are none or several."""
    if not scan.studies:
        skipped = ", ".join(f"{n} {kind}" for kind, n in sorted(scan.skipped_summary().items()))
        example = ""
        if scan.skipped:
            first = scan.skipped[0]
            example = f", e.g. '{first.path}': {first.reason}"
        raise InputError(
            f"no DICOM images found under '{scan.root}' ({scan.files_seen} file(s) seen"
            + (f"; skipped: {skipped}{example}" if skipped else "")
            + "); give the folder exported from the PACS"
        )
    if len(scan.studies) > 1:
        listing = "; ".join(study.summary() for study in scan.studies)
        raise InputError(
            f"'{scan.root}' holds {len(scan.studies)} studies: {listing}; give one study per call "
            "(batch processing handles folders with several studies)"
        )
    return scan.studies[0]


def _load_dicom_study(
    root: Path,
    *,
    t1_uid: str | None,
    t2_uid: str | None,
    io_cfg: IoSettings,
    sel_cfg: SeriesSelectionSettings,
    checks: InputCheckSettings,
) -> StudyImages:
    if root.is_file():
        raise UsageError(f"'{root}' is a file; give the DICOM study folder, or NIfTI/MHA files as T1/T2 (--t1/--t2)")
    scan = scan_folder(root, config=io_cfg)
    study = single_study(scan)
    return _load_indexed(
        study,
        decisions=[scan_decision(scan)],
        skipped=scan.skipped,
        t1_uid=t1_uid,
        t2_uid=t2_uid,
        io_cfg=io_cfg,
        sel_cfg=sel_cfg,
        checks=checks,
    )


def load_study_index(
    index: StudyIndex,
    *,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    config: IoSettings | None = None,
    selection: SeriesSelectionSettings | None = None,
    checks: InputCheckSettings | None = None,
) -> StudyImages:
    """Read the sagittal T1 and T2 of a study already found by :func:`~modic.io.dicom_scan.scan_studies`.

    The study's files may lie in any number of folders under ``index.root``;
    batch processing scans a cohort once and loads each study from its index.
    Arguments and errors are those of :func:`load_study`.
    """
    io_cfg = io_config(config)
    sel_cfg = selection_config(selection)
    checks = checks if checks is not None else shipped_settings().input_checks
    corrupt = tuple(item for series in index.series for item in series.corrupt_files)
    decision = {
        "event": "index",
        "level": "warning" if corrupt else "info",
        "root": str(index.root),
        "series": len(index.series),
        "images": index.n_instances,
        "message": f"study taken from the scan of '{index.root}': {len(index.series)} series, "
        f"{index.n_instances} image(s)" + (f", {len(corrupt)} corrupt file(s) skipped" if corrupt else ""),
    }
    return _load_indexed(
        index, decisions=[decision], skipped=corrupt, t1_uid=t1_uid, t2_uid=t2_uid, io_cfg=io_cfg, sel_cfg=sel_cfg,
        checks=checks,
    )


def _load_indexed(
    study: StudyIndex,
    *,
    decisions: list[dict[str, Any]],
    skipped: tuple[SkippedFile, ...],
    t1_uid: str | None,
    t2_uid: str | None,
    io_cfg: IoSettings,
    sel_cfg: SeriesSelectionSettings,
    checks: InputCheckSettings,
) -> StudyImages:
    root = study.root
    chosen = select_series(study, t1_uid=t1_uid, t2_uid=t2_uid, config=sel_cfg, io_settings=io_cfg)
    decisions.extend(chosen.decisions)
    try:
        chosen.require_any()
    except SeriesSelectionError:
        _log_warnings(decisions)
        raise

    roles = [(role, series) for role in ("t1", "t2") if (series := chosen.chosen(role)) is not None]
    for _, series in roles:
        check_memory(series, config=io_cfg)  # refuse before reading any pixel of either series
    volumes: dict[str, Volume] = {}
    headers: dict[str, tuple[Dataset, ...]] = {}
    infos: dict[str, SeriesInfo] = {}
    for role, series in roles:
        loaded = load_series(series, config=io_cfg)
        for warning in loaded.warnings:
            decisions.append({"event": "load", "level": "warning", "role": role, "message": warning})
        for code, message in loaded.flags:
            decisions.append({"event": "load", "level": "warning", "role": role, "flag": code, "message": message})
        c = chosen.classifications[series.series_uid]
        volume = loaded.volume
        volumes[role] = Volume(
            array=volume.array,
            affine=volume.affine,
            info={**volume.info, "role": role, "weighting": c.weighting, "plane": c.plane},
        )
        headers[role] = loaded.headers
        infos[role] = _dicom_series_info(role, c, volumes[role], root=root)
    return _assemble(
        volumes, decisions, infos, io_cfg=io_cfg, checks=checks,
        study_uid=study.study_uid,
        t1_source_headers=headers.get("t1", ()),
        t2_source_headers=headers.get("t2", ()),
        skipped_files=skipped,
    )


def _load_files(
    *,
    t1: str | Path | None,
    t2: str | Path | None,
    io_cfg: IoSettings,
    sel_cfg: SeriesSelectionSettings,
    checks: InputCheckSettings,
) -> StudyImages:
    decisions: list[dict[str, Any]] = []
    volumes: dict[str, Volume] = {}
    infos: dict[str, SeriesInfo] = {}
    tolerance = float(sel_cfg.plane.oblique_tolerance_deg)
    for role, given in (("t1", t1), ("t2", t2)):
        if given is None:
            message = f"no {role.upper()} file given; the analysis continues without it"
            decisions.append({"event": "missing", "level": "warning", "role": role, "message": message})
            continue
        file = Path(given)
        if file.is_dir():
            raise UsageError(
                f"--{role} '{file}' is a folder; give the DICOM study folder as the study path "
                f"(choose the series with --{role}-uid) or a NIfTI/MHA file as --{role}"
            )
        volume = read_volume(file, config=io_cfg)
        plane, _ = plane_of(volume.affine[:3, 2], tolerance_deg=tolerance)
        volumes[role] = Volume(
            array=volume.array,
            affine=volume.affine,
            info={**volume.info, "role": role, "weighting": role.upper(), "plane": plane},
        )
        infos[role] = SeriesInfo(
            role=role,
            source=str(volume.info.get("source", "file")),
            path=str(file),
            series_uid=None,
            series_number=None,
            description=file.name,
            plane=plane,
            weighting=role.upper(),
            repetition_time=None,
            echo_time=None,
            inversion_time=None,
            shape=volume.shape,
            spacing=volume.spacing,
            frame_of_reference_uid="",
        )
        decisions.append(
            {
                "event": "input",
                "level": "info",
                "role": role,
                "path": str(file),
                "message": f"{role.upper()} read from '{file}' (weighting as given by the user)",
                "warnings": list(volume.info.get("warnings", [])),
            }
        )
    return _assemble(volumes, decisions, infos, io_cfg=io_cfg, checks=checks, study_uid=None)


def _assemble(
    volumes: Mapping[str, Volume],
    decisions: list[dict[str, Any]],
    series: dict[str, SeriesInfo],
    *,
    io_cfg: IoSettings,
    checks: InputCheckSettings,
    **provenance: Any,
) -> StudyImages:
    """The study's images with the T2 brought onto the T1 grid; warnings among ``decisions`` are logged.

    Raises:
        InputError: the T1 and the T2 hold the same pixel data (one image given as both).
    """
    _refuse_identical(volumes, series)
    t2_native = volumes.get("t2")
    t2 = _align(t2_native, volumes.get("t1"), decisions, io_cfg=io_cfg, checks=checks)
    if t2 is None and t2_native is not None:
        series = {role: info for role, info in series.items() if role != "t2"}
        t2_native = None
        provenance = {**provenance, "t2_source_headers": ()}
    _log_warnings(decisions)
    return StudyImages(
        t1=volumes.get("t1"), t2=t2, t2_native=t2_native, decisions=decisions, series=series, **provenance
    )


def _refuse_identical(volumes: Mapping[str, Volume], series: Mapping[str, SeriesInfo]) -> None:
    """One image given as both T1 and T2 (same pixels) cannot show Modic types: refuse it."""
    t1, t2 = volumes.get("t1"), volumes.get("t2")
    if t1 is None or t2 is None or t1.shape != t2.shape or not np.array_equal(t1.array, t2.array):
        return
    raise InputError(
        f"the T1 ({_shown(series['t1'])}) and the T2 ({_shown(series['t2'])}) hold identical pixel data: the same "
        "images were given as both; give the sagittal T1 and the sagittal T2 of the study"
    )


def _shown(info: SeriesInfo) -> str:
    if info.series_number is not None:
        return f"series {info.series_number} '{info.description}'"
    return f"'{info.description}'"


def _align(
    t2: Volume | None,
    t1: Volume | None,
    decisions: list[dict[str, Any]],
    *,
    io_cfg: IoSettings,
    checks: InputCheckSettings,
) -> Volume | None:
    """The T2 on the T1 grid (unchanged when the grids already match), with the decision logged.

    None when the T2 covers less than ``overlap.min_t2_coverage`` of the T1's
    field of view (``checks``, ``configs/input_checks.yaml``): an image that does not
    overlap the T1 is never fused with it; the study goes on as T1-only, with
    the warning ``t2_outside_t1``.
    """
    if t2 is None or t1 is None:
        return t2
    aligned = resample_to(t2, t1, interpolation="linear", config=io_cfg)
    if aligned is t2:
        decisions.append(
            {
                "event": "resample",
                "level": "info",
                "identity": True,
                "message": "T2 is already on the T1 grid; not resampled",
            }
        )
        return aligned
    decisions.append(
        {
            "event": "resample",
            "level": "info",
            "identity": False,
            "from_shape": list(t2.shape),
            "to_shape": list(t1.shape),
            "message": f"T2 resampled from {t2.shape} onto the T1 grid {t1.shape} (linear, physical space)",
        }
    )
    coverage = resample_to(t2.with_array(np.ones(t2.shape, dtype=np.float32)), t1, interpolation="nearest",
                           config=io_cfg).array
    covered = float(np.count_nonzero(coverage > 0.5)) / max(coverage.size, 1)
    minimum = float(checks.overlap.min_t2_coverage)
    if covered < minimum:
        message = (
            f"the T2 covers {100 * covered:.1f}% of the T1 field of view (at least {100 * minimum:g}% needed, "
            "overlap.min_t2_coverage in configs/input_checks.yaml): it does not show the same anatomy, so it is "
            "not used and the study is analysed as T1-only"
        )
        decisions.append(
            {"event": "resample", "level": "warning", "flag": "t2_outside_t1", "coverage": round(covered, 4),
             "message": message}
        )
        return None
    return aligned


def _log_warnings(decisions: list[dict[str, Any]]) -> None:
    """Log every warning of the decision log once, when the study has been read."""
    for decision in decisions:
        if decision["level"] == "warning":
            log.warning(decision["message"])
        if decision["event"] == "series" and decision["status"] == "accepted":
            for note in decision["warnings"]:
                log.info("%s: %s", decision["role"].upper(), note)


def scan_decision(scan: FolderScan) -> dict[str, Any]:
    """The decision-log entry describing a folder scan.

    ``skipped_counts`` counts every skipped file by kind; ``skipped`` lists them
    with reasons, except plain non-DICOM files (often many, never interesting).
    """
    counts = scan.skipped_summary()
    message = f"scanned '{scan.root}': {scan.files_seen} file(s), {len(scan.studies)} study(ies)"
    if counts:
        message += "; skipped " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    problems = {"unreadable", "corrupt"} & set(counts)
    return {
        "event": "scan",
        "level": "warning" if problems else "info",
        "root": str(scan.root),
        "files_seen": scan.files_seen,
        "studies": [study.study_uid for study in scan.studies],
        "skipped": [item.to_dict() for item in scan.skipped if item.kind != "not_dicom"],
        "skipped_counts": counts,
        "message": message,
    }


def _dicom_series_info(role: str, c: SeriesClassification, volume: Volume, *, root: Path) -> SeriesInfo:
    return SeriesInfo(
        role=role,
        source="dicom",
        path=str(root),
        series_uid=c.series_uid,
        series_number=c.number,
        description=c.description,
        plane=c.plane,
        weighting=c.weighting,
        repetition_time=c.repetition_time,
        echo_time=c.echo_time,
        inversion_time=c.inversion_time,
        shape=volume.shape,
        spacing=tuple(float(v) for v in np.round(volume.spacing, 6)),  # type: ignore[arg-type]
        frame_of_reference_uid=c.frame_of_reference_uid,
    )
