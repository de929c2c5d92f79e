"""Builders shared by the ``test_io_*`` modules: small volumes written as real DICOM series.

Series are written with :func:`modic.synth.dicom_writer.write_series`; helpers
only change headers the writer does not expose (SOP class, UIDs, geometry
corruptions) through pydicom.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.fileset import FileSet

from modic.io.volume import Volume, lps_to_ras
from modic.synth.dicom_writer import PatientStudy, SeriesProtocol, deterministic_uid, write_series

STUDY_UID = "1.2.826.0.1.3680043.10.1543.99.1"
OTHER_STUDY_UID = "1.2.826.0.1.3680043.10.1543.99.2"

# Directions (LPS) of the IOP row vector, IOP column vector and slice normal for each plane.
PLANES = {
    "sagittal": ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
    "coronal": ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
    "axial": ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
}


def patient(study_uid: str = STUDY_UID, *, frame: str = "") -> PatientStudy:
    return PatientStudy(
        patient_name="TEST^IO",
        patient_id="IO001",
        birth_date="19700101",
        sex="F",
        study_uid=study_uid,
        frame_of_reference_uid=frame,
    )


def grid_affine(
    plane: str = "sagittal",
    *,
    spacing: tuple[float, float, float] = (0.8, 0.8, 4.0),
    origin: Sequence[float] = (14.0, -20.0, 30.0),
    normal_sign: float = 1.0,
) -> np.ndarray:
    """Voxel-to-RAS affine: i along the IOP row, j along the IOP column, k along +/- the normal.

    ``spacing`` is (column spacing, row spacing, slice spacing); ``origin`` is LPS.
    """
    row, col = (np.asarray(v) for v in PLANES[plane])
    lps = np.eye(4)
    lps[:3, 0] = row * spacing[0]
    lps[:3, 1] = col * spacing[1]
    lps[:3, 2] = normal_sign * np.cross(row, col) * spacing[2]
    lps[:3, 3] = origin
    return lps_to_ras(lps)


def pattern(shape: tuple[int, int, int], *, seed: int = 0) -> np.ndarray:
    """Integer-valued float32 image whose every slice is different (exact after uint16 storage)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 900, size=shape).astype(np.float32)
    data += (np.arange(shape[2], dtype=np.float32) * 1000)[np.newaxis, np.newaxis, :]
    return data


def volume(
    shape: tuple[int, int, int] = (24, 20, 8),
    *,
    plane: str = "sagittal",
    spacing: tuple[float, float, float] = (0.8, 0.8, 4.0),
    origin: Sequence[float] = (14.0, -20.0, 30.0),
    seed: int = 0,
    normal_sign: float = 1.0,
) -> Volume:
    return Volume(
        pattern(shape, seed=seed),
        grid_affine(plane, spacing=spacing, origin=origin, normal_sign=normal_sign),
    )


PROTOCOLS: dict[str, dict[str, Any]] = {
    "t1": dict(description="t1_tse_sag", repetition_time=550, echo_time=11),
    "t2": dict(description="t2_tse_sag", repetition_time=3500, echo_time=95),
    "stir": dict(
        description="t2_tirm_sag", repetition_time=4000, echo_time=60, inversion_time=160, scanning_sequence=("IR",)
    ),
    "t2fs": dict(description="t2_tse_fs_sag", repetition_time=3800, echo_time=90, scan_options=("FS",)),
    "pd": dict(description="pd_tse_sag", repetition_time=2500, echo_time=25),
}


def write(
    folder: Path,
    kind: str,
    number: int,
    *,
    vol: Volume | None = None,
    study_uid: str = STUDY_UID,
    frame: str = "",
    **protocol: Any,
) -> list[Path]:
    """Write one series of a known kind (``t1``, ``t2``, ``stir``, ``t2fs``, ``pd``) and return its files."""
    settings = {**PROTOCOLS[kind], **protocol}
    transfer_syntax = settings.pop("transfer_syntax", None)
    rescale = settings.pop("rescale", None)
    file_names = settings.pop("file_names", None)
    extra = {"transfer_syntax": transfer_syntax} if transfer_syntax else {}
    return write_series(
        vol if vol is not None else volume(seed=number),
        folder,
        patient=patient(study_uid, frame=frame),
        protocol=SeriesProtocol(number=number, **settings),
        rescale=rescale,
        file_names=file_names,
        **extra,
    )


def edit(path: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    """Rewrite one DICOM file after ``change(dataset)``."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path, enforce_file_format=True)


def new_instance_uids(paths: Sequence[Path], *, tag: str) -> None:
    """Give the files fresh SOPInstanceUIDs (for series written in several parts)."""
    for index, path in enumerate(paths):
        uid = deterministic_uid("test-io", tag, index)

        def change(ds: pydicom.Dataset, uid: str = uid) -> None:
            ds.SOPInstanceUID = uid
            ds.file_meta.MediaStorageSOPInstanceUID = uid

        edit(path, change)


def pacs_export(source: Path, target: Path) -> Path:
    """Copy every DICOM file under ``source`` into a DICOMDIR file-set (PT*/ST*/SE*/IM* names, no extensions)."""
    file_set = FileSet()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        file_set.add(pydicom.dcmread(path))
    file_set.write(target)
    return target


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, dirs_exist_ok=True)
    return target
