"""Load a single sagittal T1/T2 slice pair as :class:`~modic.io.study.StudyImages`.

Pictures (PNG/JPEG/TIFF) carry no position: both slices get an affine from
their pixel spacing with the first pixel at the origin, and the T2 is scaled
onto the T1 grid in millimetres. Because real pairs are not always
co-registered pixel for pixel, the pipeline then refines the alignment on the
segmented spine (:mod:`modic.preprocessing.registration`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modic.errors import UsageError
from modic.io.formats import read_slice
from modic.io.resample import resample_to
from modic.io.study import SeriesInfo, StudyImages
from modic.io.volume import Volume
from modic.settings import IoSettings


def load_slice_pair(
    *,
    t1: str | Path | None,
    t2: str | Path | None,
    spacing: tuple[float, float] | None = None,
    t2_spacing: tuple[float, float] | None = None,
    config: IoSettings | None = None,
) -> StudyImages:
    """Read a T1 and/or T2 slice.

    Args:
        t1: T1 slice file (PNG/JPEG/TIFF, single-slice DICOM or NIfTI).
        t2: T2 slice file of the same position.
        spacing: ``(row_mm, col_mm)`` of the T1 (required for pictures).
        t2_spacing: spacing of the T2 when it differs; defaults to ``spacing``.
        config: the io settings (``io``); the shipped ones by default.

    Raises:
        UsageError: no file given, missing spacing, or two pictures of
            different size that are claimed to share one spacing.
    """
    if t1 is None and t2 is None:
        raise UsageError("give a T1 slice (--t1), a T2 slice (--t2), or both")
    t1_volume = read_slice(t1, spacing=spacing, config=config) if t1 is not None else None
    t2_volume = read_slice(t2, spacing=t2_spacing or spacing, config=config) if t2 is not None else None
    decisions: list[dict[str, Any]] = []
    if t1_volume is not None and t2_volume is not None and t2_spacing is None and _raster(t1_volume, t2_volume):
        if t1_volume.shape != t2_volume.shape:
            raise UsageError(
                f"the T1 is {_size(t1_volume)} pixels and the T2 {_size(t2_volume)}: pictures of different size "
                "cannot share one spacing; give the T2's own spacing with --t2-spacing ROW_MM COL_MM"
            )
    for role, volume, path in (("t1", t1_volume, t1), ("t2", t2_volume, t2)):
        if volume is None:
            decisions.append({"event": "missing", "level": "warning", "role": role,
                              "message": f"no {role.upper()} slice given; the analysis continues without it"})
        else:
            decisions.append({"event": "input", "level": "info", "role": role, "path": str(path),
                              "message": f"{role.upper()} slice {_size(volume)} pixels at "
                              f"{volume.spacing[1]:.3g} x {volume.spacing[0]:.3g} mm (row x column)"})
    t2_on_t1 = t2_volume
    if t1_volume is not None and t2_volume is not None:
        t2_on_t1 = resample_to(t2_volume, t1_volume, config=config)
    series = {
        role: _series_info(role, volume, path)
        for role, volume, path in (("t1", t1_volume, t1), ("t2", t2_volume, t2))
        if volume is not None
    }
    return StudyImages(
        t1=t1_volume,
        t2=t2_on_t1,
        t2_native=t2_volume,
        decisions=decisions,
        study_uid=None,
        series=series,
    )


def _raster(*volumes: Volume) -> bool:
    return all(v.info.get("source") == "raster" for v in volumes)


def _size(volume: Volume) -> str:
    return f"{volume.shape[0]}x{volume.shape[1]}"


def _series_info(role: str, volume: Volume, path: str | Path | None) -> SeriesInfo:
    return SeriesInfo(
        role=role,
        source=str(volume.info.get("source", "file")),
        path=str(path),
        series_uid=None,
        series_number=None,
        description="",
        plane="sagittal",
        weighting=role.upper(),
        repetition_time=None,
        echo_time=None,
        inversion_time=None,
        shape=volume.shape,
        spacing=volume.spacing,
        frame_of_reference_uid="",
    )
