"""Pictures for training and measuring the orientation network, and the fixed patient split.

Every picture is a :func:`~modic.orientation.view.sagittal_view` in its true
orientation (head up); training adds its copy flipped head to foot as the
"upside down" sample. Sources:

- ``spider_midsag``: the T1 and T2 mid-sagittal PNG slices. Patient 57 (both
  pictures) and the T1 of patient 52 are stored head to foot in the dataset
  itself (:data:`STORED_HEAD_TO_FOOT`): their picture is turned upright here,
  i.e. they are labelled by their true orientation.
- ``spider_t2space``: 3D T2 SPACE volumes of the same SPIDER patients, the
  middle sagittal slice and its neighbours.
- ``lumbar_seg``: 1 mm volumes of other public sets, the same slices.
- ``modic synth`` studies: T1 and T2, the same slices.

The split is fixed before anything is looked at (:func:`split_half`): the
SPIDER patients sorted by numeric ID, even positions for training, odd
positions held out; a ``spider_t2space`` volume goes with its patient; the
``lumbar_seg`` cases sorted by name, split the same way. Synthetic studies
are training data only.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modic.errors import ConfigError
from modic.io.volume import Volume
from modic.orientation.view import sagittal_slice_count, sagittal_view

if TYPE_CHECKING:
    from modic.training.settings import OrientationDataSettings

log = logging.getLogger("modic.train")

STORED_HEAD_TO_FOOT = frozenset({("57", "t1"), ("57", "t2"), ("52", "t1")})
"""SPIDER mid-sagittal pictures (patient, role) that the dataset itself stores upside down."""


@dataclass(frozen=True)
class Picture:
    """One sagittal picture in its true orientation (head up) and where it came from.

    Attributes:
        group: the patient (or case, or synthetic seed); folds never split a group.
        source: ``spider_midsag``, ``spider_t2space``, ``lumbar_seg`` or ``synthetic``.
        name: the file and slice offset, for reports.
        view: ``(size, size)`` float32 picture, head up.
    """

    group: str
    source: str
    name: str
    view: np.ndarray


def _order(name: str) -> tuple[int, str]:
    return (int(name), name) if name.isdigit() else (10**9, name)


def split_half(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(training, held_out)``: names sorted (numerically when they are numbers), even positions vs odd."""
    ordered = sorted(set(names), key=_order)
    return ordered[0::2], ordered[1::2]


def spider_patients(root: Path) -> list[str]:
    """Patient IDs of a ``spider_midsag`` folder (from its pictures' names)."""
    return sorted({path.name.split("_")[0] for path in (root / "images").glob("*_t[12].png")}, key=_order)


def lumbar_seg_cases(root: Path) -> list[str]:
    """Case names of a ``lumbar_seg`` folder."""
    return sorted(path.name.removesuffix(".nii.gz") for path in (root / "images").glob("*.nii.gz"))


def spider_pictures(root: Path, patients: Sequence[str], *, size: int) -> list[Picture]:
    """The T1 and T2 pictures of ``patients``, turned upright where the dataset stores them head to foot."""
    from modic.evaluation.spider import load_patient_images, read_spacings

    spacings = read_spacings(root)
    pictures = []
    for patient in patients:
        images = load_patient_images(root, patient, spacings)
        for role, volume in (("t1", images.t1), ("t2", images.t2_native)):
            if volume is None:
                continue
            view = sagittal_view(volume, size=size)
            if (patient, role) in STORED_HEAD_TO_FOOT:
                view = np.ascontiguousarray(view[::-1])
            pictures.append(Picture(f"spider:{patient}", "spider_midsag", f"{patient}_{role}", view))
    return pictures


def volume_pictures(
    volume: Volume, *, group: str, source: str, name: str, offsets: Sequence[int], size: int
) -> list[Picture]:
    """Pictures of the sagittal slices ``offsets`` from the middle of ``volume`` (each slice once)."""
    count = sagittal_slice_count(volume)
    middle = count // 2
    kept = sorted({min(max(middle + int(o), 0), count - 1) - middle for o in offsets})
    return [
        Picture(group, source, f"{name}@{offset:+d}", sagittal_view(volume, size=size, offset=offset))
        for offset in kept
    ]


def nifti_pictures(
    root: Path, names: Sequence[str], *, source: str, group_prefix: str, offsets: Sequence[int], size: int
) -> list[Picture]:
    """Pictures of ``root/images/<name>.nii.gz`` volumes, oriented by their affine (nibabel)."""
    from modic.io.formats import read_nifti

    pictures = []
    for name in names:
        volume = read_nifti(root / "images" / f"{name}.nii.gz")
        pictures += volume_pictures(
            volume, group=f"{group_prefix}:{name}", source=source, name=name, offsets=offsets, size=size
        )
    return pictures


def synthetic_pictures(*, seeds: Sequence[int], config: str, offsets: Sequence[int], size: int) -> list[Picture]:
    """Pictures of the T1 and T2 of synthetic studies (``modic synth``)."""
    from modic.synth import generate_study

    pictures = []
    for seed in seeds:
        study = generate_study(seed=int(seed), config=config)
        for role, volume in (("t1", study.t1), ("t2", study.t2)):
            pictures += volume_pictures(
                volume, group=f"synthetic:{seed}", source="synthetic", name=f"synth{seed}_{role}",
                offsets=offsets, size=size,
            )
    return pictures


def spider_t2space_patients(root: Path) -> list[str]:
    """Patient IDs of a ``spider_t2space`` folder (its ``cases.csv``)."""
    with (root / "cases.csv").open(newline="", encoding="utf-8") as handle:
        return [row["patient"] for row in csv.DictReader(handle)]


def collect(data: OrientationDataSettings, *, part: str, size: int) -> list[Picture]:
    """The ``training`` or ``held_out`` pictures of every real source in ``data`` (plus synthetic for training).

    ``data`` is the typed ``data`` section of ``configs/orientation/train.yaml``
    (:func:`~modic.training.settings.load_orientation_train_settings`).
    """
    if part not in ("training", "held_out"):
        raise ConfigError(f"part {part!r} is neither 'training' nor 'held_out'")
    which = 0 if part == "training" else 1
    offsets = [int(o) for o in data.volume_offsets]
    pictures: list[Picture] = []
    midsag = Path(data.spider_midsag)
    spider_split = split_half(spider_patients(midsag))
    pictures += spider_pictures(midsag, spider_split[which], size=size)
    t2space = Path(data.spider_t2space)
    chosen = set(spider_split[which])
    pictures += nifti_pictures(
        t2space, [p for p in spider_t2space_patients(t2space) if p in chosen],
        source="spider_t2space", group_prefix="spider", offsets=offsets, size=size,
    )
    lumbar = Path(data.lumbar_seg)
    pictures += nifti_pictures(
        lumbar, split_half(lumbar_seg_cases(lumbar))[which],
        source="lumbar_seg", group_prefix="lumbar_seg", offsets=offsets, size=size,
    )
    synthetic = data.synthetic
    if part == "training" and synthetic is not None and int(synthetic.count) > 0:
        start = int(synthetic.seed_start)
        pictures += synthetic_pictures(
            seeds=range(start, start + int(synthetic.count)), config=str(synthetic.config),
            offsets=[int(o) for o in synthetic.offsets], size=size,
        )
    counts = {s: sum(p.source == s for p in pictures) for s in sorted({p.source for p in pictures})}
    log.info("%s pictures: %s", part, counts)
    return pictures
