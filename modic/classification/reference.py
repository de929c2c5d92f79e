"""The reference marrow a band's signal is measured against.

Every signal ratio divides by the median of the central marrow of the same
vertebral body (:func:`modic.levels.endplates.reference_region`). A type 1
change (oedema) reaching deeper than about 40 % of the body height spreads
into that central region and shifts the median towards itself, so the oedema
at the endplate then looks normal. Normal marrow is nearly uniform along the
body's height, so such a shift shows as a difference between the region's
cranial and caudal halves, with the signature of oedema: one half darker on
T1 *and* brighter on T2 than the other, each by more than
``max_half_difference``. Then the other half alone is the reference.

Only that signature switches. A smooth bias field moves T1 and T2 the same
way, and so do fat (type 2) and sclerosis (type 3) against normal marrow
(and each against the other), so a same-direction difference cannot say which
half is normal; those keep the whole region. With T1 or T2 alone the
signature cannot be seen and the whole region is used.

Changes reaching the reference from *both* endplates leave no clean half.
They show against the other vertebrae instead (:func:`choose_references`):
normal marrow has nearly the same T1/T2 ratio in every vertebra (a bias
field common to both sequences, and the fattier sacral marrow, brighten T1
and T2 alike), whereas oedema darkens T1 and brightens T2. A vertebra whose
reference T1/T2 ratio is lower than that of *every* other graded vertebra by
more than ``max_vertebra_difference`` is measured against the reference
marrow of its nearest vertebrae whose ratio agrees with the rest. At least
three vertebrae must have a reference; two contaminated alike agree with each
other and are not caught. Volumes only: on single 8-bit slices (SPIDER) the
ratio of a one-slice reference varies much more between vertebrae (33 of 495
were outliers by this test, 18 of them S1), and the switch lowered the
presence figures there (docs/classification.md).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np

from modic.levels import EndplateRegion, SpineAnatomy
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST

WHOLE = "whole"
CRANIAL_HALF = "cranial half"
CAUDAL_HALF = "caudal half"
NEIGHBOURING_VERTEBRAE = "neighbouring vertebrae"
REFERENCE_PARTS = (WHOLE, CRANIAL_HALF, CAUDAL_HALF, NEIGHBOURING_VERTEBRAE)
"""Values of ``region.reference_part`` in reports."""


def choose_references(
    anatomy: SpineAnatomy,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    max_half_difference: float | None,
    max_vertebra_difference: float | None,
) -> dict[int, tuple[np.ndarray, str]]:
    """Reference marrow mask and its part for every vertebra of ``anatomy``, keyed by reference label.

    Each vertebra's own reference first (:func:`reference_marrow`); then, in a
    volume, a vertebra whose reference T1/T2 ratio is lower than every other
    vertebra's (:func:`low_ratio_outliers`) is measured against its nearest
    agreeing vertebrae's references (see the module docstring). Both checks
    need T1 and T2; ``max_vertebra_difference`` is a fraction (0.10 for 10 %),
    None disables the second.
    """
    regions: dict[int, EndplateRegion] = {}
    for region in anatomy.endplates:
        regions.setdefault(region.reference_label, region)
    chosen = {
        label: reference_marrow(anatomy, region, t1=t1, t2=t2, max_half_difference=max_half_difference)
        for label, region in regions.items()
    }
    single_slice = anatomy.geometry.shape[anatomy.slice_axis] == 1
    if max_vertebra_difference is None or t1 is None or t2 is None or single_slice:
        return chosen
    log_ratios = {}
    for label, (mask, _) in chosen.items():
        medians = [float(np.median(image[mask])) if mask.any() else float("nan") for image in (t1, t2)]
        if all(np.isfinite(m) and m > 0 for m in medians):
            log_ratios[label] = float(np.log(medians[0] / medians[1]))
    outliers = low_ratio_outliers(log_ratios, limit=float(np.log1p(max_vertebra_difference)))
    position = {label: VERTEBRAE_CAUDAL_FIRST.index(regions[label].vertebra) for label in regions}
    agreeing = [label for label in log_ratios if label not in outliers]
    for label in outliers:
        distance = {other: abs(position[other] - position[label]) for other in agreeing}
        nearest = [other for other in agreeing if distance[other] == min(distance.values())]
        chosen[label] = (np.logical_or.reduce([chosen[other][0] for other in nearest]), NEIGHBOURING_VERTEBRAE)
    return chosen


def low_ratio_outliers(log_ratios: Mapping[Hashable, float], *, limit: float) -> set[Hashable]:
    """Keys whose value is lower than every other key's by more than ``limit``.

    Needs at least three values (so that "the rest" agree on something); at
    most one key can qualify.
    """
    if len(log_ratios) < 3:
        return set()
    return {
        key for key, value in log_ratios.items()
        if all(other - value > limit for k, other in log_ratios.items() if k != key)
    }


def reference_marrow(
    anatomy: SpineAnatomy,
    region: EndplateRegion,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    max_half_difference: float | None,
) -> tuple[np.ndarray, str]:
    """Mask of the reference marrow for ``region`` (anatomy's grid) and which part it is.

    Returns the whole reference region (``"whole"``) unless one of its halves
    shows the oedema signature against the other (see the module docstring);
    ``max_half_difference`` is a fraction (0.10 for 10 %), None disables the
    check.
    """
    reference = anatomy.reference_map == region.reference_label
    axis = anatomy.spine_axes.get(region.vertebra)
    if max_half_difference is None or t1 is None or t2 is None or axis is None:
        return reference, WHOLE
    index = np.argwhere(reference)
    height = anatomy.geometry.world_coordinates(index) @ (axis / np.linalg.norm(axis))
    cranial = height >= np.median(height)
    halves = {CRANIAL_HALF: index[cranial], CAUDAL_HALF: index[~cranial]}
    if min(len(h) for h in halves.values()) < 2:
        return reference, WHOLE
    medians = {part: np.array([np.median(image[tuple(h.T)]) for image in (t1, t2)]) for part, h in halves.items()}
    values = np.stack(list(medians.values()))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        return reference, WHOLE
    t1_step, t2_step = np.log(medians[CAUDAL_HALF] / medians[CRANIAL_HALF])
    limit = np.log1p(max_half_difference)
    if t1_step < -limit and t2_step > limit:
        part = CRANIAL_HALF
    elif t1_step > limit and t2_step < -limit:
        part = CAUDAL_HALF
    else:
        return reference, WHOLE
    chosen = np.zeros_like(reference)
    chosen[tuple(halves[part].T)] = True
    return chosen, part
