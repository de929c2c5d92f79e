"""``modic evaluate seg`` on the ``spider_t2space`` layout: clinical 3D T2 volumes with vertebra, disc and canal masks.

Each patient's T2 volume is segmented at its own resolution by the same path as
``modic analyze`` (network, instances, level naming from S1 up), and compared with
the manual mask:

* ``dice_vertebral_body``: predicted vertebral bodies (every bone instance except
  the one named S1, since the sacrum is unlabelled) against the vertebra-label
  voxels anterior to the spinal canal (the rule of
  :func:`modic.datasets.spider_t2space.vertebral_body_mask`). As for the
  ``lumbar_seg`` layout, predicted instances outside the labelled cranio-caudal
  range are counted, not penalised.
* ``dice_disc``: predicted discs against the disc label, likewise.
* ``level_correct``: the discs the pipeline names L5-S1, L4-L5 and L3-L4 each
  overlap best with the 1st, 2nd and 3rd labelled disc counted from the bottom
  (labelled discs are the connected components of the disc label at least
  ``levels.min_disc_volume_mm3`` large, the size below which the pipeline too
  ignores a disc; smaller specks in the masks are label noise).

A patient that cannot be read or segmented is listed under ``failed`` with the
reason and counts as wrong: Dice 0 and levels not named right.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from modic.errors import ModicError
from modic.evaluation.segmentation import mean_or_none, score_instance_maps
from modic.io.volume import Volume
from modic.levels.anatomy import level_flags
from modic.levels.instances import instances_from_settings, is_single_slice, voxel_size
from modic.levels.labelling import Naming, name_levels
from modic.datasets.lumbar_seg import LumbarSegCase
from modic.progress import progress as progress_of
from modic.segmentation.infer import SegmentationModel
from modic.datasets.spider_t2space import DISC, load_patient, read_patients, vertebral_body_mask
from modic.settings import LevelsSettings

CHECKED_DISCS = ("L5-S1", "L4-L5", "L3-L4")
"""Disc names checked for level accuracy, in the order of the labelled discs counted from the bottom."""


@dataclass(frozen=True)
class PatientResult:
    """Scores of one patient (``failed`` holds the reason when it could not be scored)."""

    patient: str
    dice_vertebral_body: float = 0.0
    dice_disc: float = 0.0
    level_correct: bool = False
    disc_match: dict[str, int | None] = field(default_factory=dict)
    level_warnings: tuple[str, ...] = ()
    failed: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.patient,
            "dice_vertebral_body": round(self.dice_vertebral_body, 4),
            "dice_disc": round(self.dice_disc, 4),
            "level_correct": self.level_correct,
            "labelled_disc_from_bottom": self.disc_match,
            "level_warnings": list(self.level_warnings),
            "failed": self.failed,
            "seconds": round(self.seconds, 2),
        }


def evaluate_patient(
    model: SegmentationModel, root: Path, patient: str, *, levels: LevelsSettings
) -> PatientResult:
    """Segment and score one patient (see the module docstring); failures are returned, not raised."""
    started = time.perf_counter()
    try:
        image, mask = load_patient(root, patient)
        body = vertebral_body_mask(mask, image.affine)
        probabilities = model.predict_probabilities(image)
    except ModicError as exc:
        return PatientResult(patient, failed=str(exc), seconds=time.perf_counter() - started)
    return score_patient(patient, image, mask, body, probabilities, levels=levels, started=started)


def score_patient(
    patient: str,
    image: Volume,
    mask: np.ndarray,
    body: np.ndarray,
    probabilities: np.ndarray,
    *,
    levels: LevelsSettings,
    started: float,
) -> PatientResult:
    """Scores of one patient from its class probabilities ``(C, I, J, K)`` on the image grid."""
    instances = instances_from_settings(probabilities, image, levels)
    naming = name_levels(instances.bones, instances.discs, levels)
    flags = level_flags(naming, levels, split_bodies=instances.split_bodies, single_slice=is_single_slice(image))
    warnings = tuple(dict.fromkeys(f.code for f in flags if f.severity == "warning"))
    bones = instances.bone_map.copy()
    if "S1" in naming.vertebrae:
        bones[bones == naming.vertebrae["S1"].label] = 0
    body_instances, _ = ndimage.label(body)
    disc_instances, n_discs = labelled_discs(mask, image, levels=levels)
    as_case = LumbarSegCase(patient, "SPIDER", "vertebral_body", ())
    body_score = score_instance_maps(as_case, body_instances, bones, {}, image.world_coordinates, started)
    disc_score = score_instance_maps(as_case, disc_instances, instances.disc_map, {}, image.world_coordinates, started)
    match = disc_order_match(naming, instances.disc_map, disc_instances, n_discs, image)
    return PatientResult(
        patient=patient,
        dice_vertebral_body=body_score.dice,
        dice_disc=disc_score.dice,
        level_correct=all(match.get(name) == rank for rank, name in enumerate(CHECKED_DISCS, start=1)),
        disc_match=match,
        level_warnings=warnings,
        seconds=time.perf_counter() - started,
    )


def labelled_discs(mask: np.ndarray, image: Volume, *, levels: LevelsSettings) -> tuple[np.ndarray, int]:
    """Connected components of the disc label, numbered from 1, without those under the smallest disc size."""
    components, count = ndimage.label(mask == DISC)
    sizes = np.bincount(components.ravel(), minlength=count + 1) * voxel_size(image)
    keep = np.flatnonzero(sizes >= levels.min_disc(single_slice=False))
    keep = keep[keep > 0]
    renumber = np.zeros(count + 1, dtype=np.int32)
    renumber[keep] = np.arange(1, keep.size + 1)
    return renumber[components], int(keep.size)


def disc_order_match(
    naming: Naming, disc_map: np.ndarray, labelled: np.ndarray, n_labelled: int, image: Volume
) -> dict[str, int | None]:
    """For each checked disc name, the rank from the bottom of the labelled disc it overlaps most (None: none)."""
    if n_labelled == 0:
        return {name: None for name in CHECKED_DISCS}
    heights = [
        float(image.world_coordinates(np.argwhere(labelled == index).mean(axis=0))[0][2])
        for index in range(1, n_labelled + 1)
    ]
    rank_of = {int(index) + 1: rank for rank, index in enumerate(np.argsort(heights), start=1)}
    match: dict[str, int | None] = {}
    for name in CHECKED_DISCS:
        component = naming.discs.get(name)
        if component is None:
            match[name] = None
            continue
        hits = np.bincount(labelled[disc_map == component.label], minlength=n_labelled + 1)
        hits[0] = 0
        match[name] = rank_of[int(hits.argmax())] if hits.any() else None
    return match


def evaluate_spider_t2space(
    root: str | Path, *, model: SegmentationModel, levels: LevelsSettings, progress: bool = True
) -> dict[str, Any]:
    """Metrics over every patient of a spider_t2space-layout folder (JSON-ready)."""
    root = Path(root)
    patients = read_patients(root)
    results = [
        evaluate_patient(model, root, patient, levels=levels)
        for patient in progress_of(patients, desc="patients", unit="patient", enabled=progress)
    ]
    return summarise(results)


def summarise(results: Sequence[PatientResult]) -> dict[str, Any]:
    """Summary keys of the evaluation contract; failed patients count as Dice 0 and wrongly named."""

    return {
        "layout": "spider_t2space",
        "mean_dice_vertebral_body": mean_or_none([r.dice_vertebral_body for r in results]),
        "mean_dice_disc": mean_or_none([r.dice_disc for r in results]),
        "level_accuracy": mean_or_none([float(r.level_correct) for r in results]),
        "n_cases": len(results),
        "failed": [{"case": r.patient, "reason": r.failed} for r in results if r.failed],
        "n_misnamed_with_warning": sum(bool(r.level_warnings) for r in results if not r.level_correct and not r.failed),
        "n_misnamed_without_warning": sum(not r.level_warnings for r in results if not r.level_correct and not r.failed),
        "cases": [r.as_dict() for r in results],
    }
