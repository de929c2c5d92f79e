"""The ``lumbar_seg`` dataset layout: real volumes where each case labels one structure.

A folder in this layout holds ``cases.csv`` (columns ``case``, ``source_set``,
``structure``: ``vertebral_body`` or ``disc``, and ``levels_caudal_first``),
``images/<case>.nii.gz`` and ``labels/<case>.nii.gz`` with one instance label
per vertebral body or disc. Only the structure a case names is labelled; the
other classes are *unlabelled*, not background (:mod:`modic.training.losses`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modic.errors import InputError
from modic.io.formats import read_nifti
from modic.io.volume import Volume
from modic.segmentation.classes import N_CLASSES, SegClass


@dataclass(frozen=True)
class LumbarSegCase:
    """A row of ``cases.csv`` in the lumbar_seg layout."""

    case: str
    source_set: str
    structure: str
    levels_caudal_first: tuple[str, ...]


def read_cases_csv(root: str | Path) -> list[LumbarSegCase]:
    """Parse ``root/cases.csv``; errors name the file and the bad value."""
    path = Path(root) / "cases.csv"
    if not path.is_file():
        raise InputError(f"'{path}' not found: a segmentation dataset folder needs images/, labels/ and cases.csv")
    cases = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            structure = (row.get("structure") or "").strip()
            if structure not in {"vertebral_body", "disc"}:
                raise InputError(
                    f"{path}: case '{row.get('case')}' has structure '{structure}'; expected 'vertebral_body' or 'disc'"
                )
            levels = tuple(s.strip() for s in (row.get("levels_caudal_first") or "").split(";") if s.strip())
            cases.append(LumbarSegCase(row["case"].strip(), (row.get("source_set") or "").strip(), structure, levels))
    return cases


def semantic_from_instances(instances: np.ndarray, case: LumbarSegCase) -> tuple[np.ndarray, np.ndarray]:
    """Semantic label map and labelled-class mask of a lumbar_seg case.

    Discs become :attr:`SegClass.DISC`. Vertebral bodies become
    :attr:`SegClass.VERTEBRAL_BODY`, except label 1 when the case names it S1,
    which becomes :attr:`SegClass.S1`; S1 counts as labelled only then.
    """
    semantic = np.zeros(instances.shape, dtype=np.uint8)
    labelled = np.zeros(N_CLASSES, dtype=bool)
    labelled[SegClass.BACKGROUND] = True
    if case.structure == "disc":
        semantic[instances > 0] = SegClass.DISC
        labelled[SegClass.DISC] = True
        return semantic, labelled
    semantic[instances > 0] = SegClass.VERTEBRAL_BODY
    labelled[SegClass.VERTEBRAL_BODY] = True
    if case.levels_caudal_first[:1] == ("S1",):
        semantic[instances == 1] = SegClass.S1
        labelled[SegClass.S1] = True
    return semantic, labelled


def load_case(root: str | Path, case: LumbarSegCase) -> tuple[Volume, np.ndarray]:
    """The image of ``case`` and its instance labels (``int32``, on the image grid), read by modic's NIfTI reader."""
    root = Path(root)
    image = read_nifti(root / "images" / f"{case.case}.nii.gz")
    labels = read_nifti(root / "labels" / f"{case.case}.nii.gz")
    if labels.shape != image.shape or not np.allclose(labels.affine, image.affine, atol=1e-3):
        raise InputError(
            f"'{root / 'labels' / case.case}.nii.gz' does not share the grid of its image; labels must lie on the "
            "image grid"
        )
    return image, np.rint(labels.array).astype(np.int32)
