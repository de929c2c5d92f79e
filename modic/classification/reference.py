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
"""

from __future__ import annotations

import numpy as np

from modic.levels import EndplateRegion, SpineAnatomy

WHOLE = "whole"
CRANIAL_HALF = "cranial half"
CAUDAL_HALF = "caudal half"


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
