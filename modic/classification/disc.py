"""Degeneration of the disc next to an endplate: its height and its signal.

Modic changes sit next to degenerated discs: a disc that has lost height and
its bright T2 nucleus (Pfirrmann grade 4-5) is much more often bordered by
changed marrow than a healthy one (on SPIDER the radiologists' Pfirrmann
grade alone separates changed from unchanged levels at AUC 0.78). The
presence model (:mod:`modic.classification.presence`) reads these measures
beside the marrow band's signal. Every measure is a ratio, so scanner gain,
8-bit windowing and patient size cancel:

- height: the disc's mean height (area / front-to-back length in a sagittal
  slice) over its length, and that ratio over the same patient's tallest disc;
- signal per sequence: the disc's median and 90th percentile over the
  median of the adjacent bodies' reference marrow, and its 90th percentile
  (the nucleus) over the brightest disc of the patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from modic.levels import SpineAnatomy

SLICES_MEASURED = 3
"""A disc's height is the median over its sagittal slices of largest area (its middle)."""

MIN_SLICE_VOXELS = 10
"""Slices holding fewer disc voxels are not measured (the disc's lateral edge)."""


@dataclass(frozen=True)
class DiscMeasure:
    """One disc as segmented: height over front-to-back length and raw signal per sequence."""

    height_ratio: float
    median: dict[str, float]
    p90: dict[str, float]


@dataclass(frozen=True)
class DiscSignal:
    """A disc's signal in one sequence, relative to marrow and to the patient's brightest disc."""

    ratio_median: float
    ratio_p90: float
    patient_ratio_p90: float


@dataclass(frozen=True)
class DiscFeatures:
    """The degeneration measures of the disc next to an endplate (a signal is None when that sequence is absent)."""

    height_ratio: float
    patient_height_ratio: float
    t1: DiscSignal | None
    t2: DiscSignal | None


def measure_discs(
    anatomy: SpineAnatomy, *, t1: np.ndarray | None, t2: np.ndarray | None
) -> dict[str, DiscMeasure]:
    """Height and raw signal of every named disc of ``anatomy`` (images on its grid; either may be None)."""
    measures = {}
    boxes = ndimage.find_objects(anatomy.disc_map)
    for disc in anatomy.discs:
        box = boxes[disc.label - 1] if 0 < disc.label <= len(boxes) else None
        if box is None:
            continue
        mask = anatomy.disc_map[box] == disc.label
        median: dict[str, float] = {}
        p90: dict[str, float] = {}
        for name, image in (("t1", t1), ("t2", t2)):
            if image is None:
                continue
            values = image[box][mask].astype(float)
            values = values[np.isfinite(values)]
            if values.size:
                median[name] = float(np.median(values))
                p90[name] = float(np.percentile(values, 90))
        indices = np.argwhere(mask) + np.asarray([part.start for part in box])
        measures[disc.name] = DiscMeasure(_height_ratio(anatomy, indices), median, p90)
    return measures


def _height_ratio(anatomy: SpineAnatomy, indices: np.ndarray) -> float:
    """Mean height over front-to-back length of a disc (voxel ``indices``), the median over its largest sagittal sections."""
    axis = anatomy.slice_axis
    geometry = anatomy.geometry
    in_plane = [i for i in range(3) if i != axis]
    pixel_area = geometry.spacing[in_plane[0]] * geometry.spacing[in_plane[1]]
    pixel = min(geometry.spacing[i] for i in in_plane)
    sections = []
    for position in np.unique(indices[:, axis]):
        section = indices[indices[:, axis] == position]
        if len(section) < MIN_SLICE_VOXELS:
            continue
        points = geometry.world_coordinates(section)
        points -= points.mean(axis=0)
        major = np.linalg.svd(points, full_matrices=False)[2][0]
        along = points @ major
        length = float(np.ptp(along)) + pixel
        sections.append((len(section), len(section) * pixel_area / length / length))
    if not sections:
        return float("nan")
    sections.sort(reverse=True)
    return float(np.median([ratio for _, ratio in sections[:SLICES_MEASURED]]))


def disc_features(
    disc: str | None, measures: Mapping[str, DiscMeasure], *, reference_medians: Mapping[str, float]
) -> DiscFeatures | None:
    """Relative measures of ``disc`` (None when it was not segmented).

    ``reference_medians`` holds, per sequence, the reference marrow median of
    the bodies the disc lies between (:attr:`SignalStats.reference_median`).
    """
    measure = measures.get(disc) if disc is not None else None
    if measure is None:
        return None
    tallest = max((m.height_ratio for m in measures.values() if np.isfinite(m.height_ratio)), default=float("nan"))

    def signal(sequence: str) -> DiscSignal | None:
        reference = reference_medians.get(sequence)
        if sequence not in measure.median or reference is None or not reference > 0:
            return None
        brightest = max(m.p90[sequence] for m in measures.values() if sequence in m.p90)
        return DiscSignal(
            ratio_median=measure.median[sequence] / reference,
            ratio_p90=measure.p90[sequence] / reference,
            patient_ratio_p90=measure.p90[sequence] / brightest if brightest > 0 else float("nan"),
        )

    return DiscFeatures(
        height_ratio=measure.height_ratio,
        patient_height_ratio=measure.height_ratio / tallest if tallest > 0 else float("nan"),
        t1=signal("t1"),
        t2=signal("t2"),
    )
