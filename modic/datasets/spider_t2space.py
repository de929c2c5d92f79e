"""The ``spider_t2space`` dataset layout: clinical 3D T2 volumes with vertebra, disc and canal masks.

A folder in this layout holds ``cases.csv`` (one row per patient, column
``patient``), ``images/<patient>.nii.gz`` and ``labels/<patient>.nii.gz`` whose
values are 0 background, 1 vertebra (body **and** posterior elements), 2
intervertebral disc and 3 spinal canal; the sacrum is not labelled (SPIDER,
van der Graaf et al., Sci Data 2024).

modic's network segments vertebral *bodies*, so the body is separated from
the arch here, by one rule used both for training labels and for the
evaluation reference (:func:`vertebral_body_mask`):

    For every cranio-caudal row of the volume, the anterior border of the
    spinal canal is the median, over the sagittal slices in which the canal is
    labelled in that row, of the most anterior canal voxel. Rows without a
    labelled canal take the border linearly interpolated between the nearest
    rows that have one (held constant beyond the first and last). A vertebra
    voxel is vertebral body when it lies strictly anterior to its row's
    border, in every sagittal slice (lateral slices through the pedicles,
    where no canal is visible, use the same border).

Because the sacrum is unlabelled, not background, the S1 class counts as
unlabelled for these cases in training (:mod:`modic.training.losses`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np

from modic.errors import InputError
from modic.io.formats import read_nifti
from modic.io.volume import Volume
from modic.segmentation.classes import N_CLASSES, SegClass

VERTEBRA = 1
DISC = 2
CANAL = 3
SOURCE = "SPIDER"
"""Source tag of these cases (``data.source_share`` key in training configs)."""
CANONICAL_CODES = ("R", "P", "I")
"""Axis order of the body rule: sagittal slice, anterior to posterior, superior to inferior."""


def lists_patients(root: str | Path) -> bool:
    """Whether ``root`` holds a ``cases.csv`` keyed by ``patient`` (what the grading evaluation needs)."""
    path = Path(root) / "cases.csv"
    if not path.is_file():
        return False
    with path.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), [])
    return "patient" in [column.strip() for column in header]


def is_spider_t2space_layout(root: str | Path) -> bool:
    """Whether ``root`` holds a ``cases.csv`` keyed by ``patient`` and a ``labels/`` folder (segmentation)."""
    return (Path(root) / "labels").is_dir() and lists_patients(root)


def read_patients(root: str | Path) -> list[str]:
    """Patient identifiers listed in ``root/cases.csv`` (in file order)."""
    path = Path(root) / "cases.csv"
    if not path.is_file():
        raise InputError(f"'{path}' not found: a spider_t2space folder needs images/, labels/ and cases.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    patients = [str(row.get("patient") or "").strip() for row in rows]
    empty = [index + 2 for index, patient in enumerate(patients) if not patient]
    if empty:
        raise InputError(f"{path}: rows {empty} have no 'patient'; every row names one patient")
    return patients


def load_patient(root: str | Path, patient: str) -> tuple[Volume, np.ndarray]:
    """The T2 image of ``patient`` and its mask (``uint8``, values 0-3) on the image grid."""
    root = Path(root)
    image_path = root / "images" / f"{patient}.nii.gz"
    label_path = root / "labels" / f"{patient}.nii.gz"
    for path in (image_path, label_path):
        if not path.is_file():
            raise InputError(f"'{path}' not found: patient '{patient}' is listed in {root / 'cases.csv'}")
    volume, label = read_nifti(image_path), read_nifti(label_path)
    if label.shape != volume.shape or not np.allclose(label.affine, volume.affine, atol=1e-3):
        raise InputError(f"'{label_path}' does not share the grid of '{image_path}'; masks must lie on the image grid")
    mask = np.rint(label.array).astype(np.uint8)
    unknown = sorted(set(np.unique(mask).tolist()) - {0, VERTEBRA, DISC, CANAL})
    if unknown:
        raise InputError(f"'{label_path}' holds values {unknown}; expected 0-3 (background, vertebra, disc, canal)")
    return volume, mask


def vertebral_body_mask(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Vertebra voxels anterior to the spinal canal (the rule in the module docstring).

    Raises:
        InputError: when no canal is labelled, so that no border can be drawn.
    """
    to_canonical = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(CANONICAL_CODES)
    )
    canonical = nib.orientations.apply_orientation(mask, to_canonical)
    border = canal_front_by_row(canonical == CANAL)
    anterior = np.arange(canonical.shape[1])[None, :, None] < border[None, None, :]
    body = (canonical == VERTEBRA) & anterior
    back = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(CANONICAL_CODES), nib.orientations.io_orientation(affine)
    )
    return nib.orientations.apply_orientation(body, back).astype(bool)


def canal_front_by_row(canal: np.ndarray) -> np.ndarray:
    """Anterior canal border per cranio-caudal row of a ``(sagittal, AP, SI)`` canal mask (AP index, float)."""
    present = canal.any(axis=1)  # (sagittal, SI)
    if not present.any():
        raise InputError("no spinal canal is labelled, so the vertebral body cannot be separated from the arch")
    first = np.where(present, canal.argmax(axis=1), np.nan)  # most anterior canal voxel per slice and row
    known = np.flatnonzero(present.any(axis=0))
    return np.interp(np.arange(first.shape[1]), known, np.nanmedian(first[:, known], axis=0))


def semantic_labels(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Network classes of a mask and which classes it annotates.

    Vertebral body -> :attr:`SegClass.VERTEBRAL_BODY`; disc -> :attr:`SegClass.DISC`;
    posterior elements and canal -> background. S1 is unlabelled (the sacrum is not
    annotated in this dataset).
    """
    semantic = np.zeros(mask.shape, dtype=np.uint8)
    semantic[vertebral_body_mask(mask, affine)] = SegClass.VERTEBRAL_BODY
    semantic[mask == DISC] = SegClass.DISC
    labelled = np.zeros(N_CLASSES, dtype=bool)
    labelled[[SegClass.BACKGROUND, SegClass.VERTEBRAL_BODY, SegClass.DISC]] = True
    return semantic, labelled


def select_patients(root: str | Path, names: Iterable[str] | None) -> list[str]:
    """``names`` checked against ``cases.csv`` (all patients when None)."""
    available = read_patients(root)
    if names is None:
        return available
    wanted = [str(name) for name in names]
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise InputError(f"patients {missing} are not listed in {Path(root) / 'cases.csv'}")
    return wanted
