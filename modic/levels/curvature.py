"""The lumbar lordosis as the named vertebral bodies show it: a front-to-back orientation cue.

The lumbar spine curves forwards (lordosis): the middle lumbar bodies lie in
front of the line from L1 to L5. Pixels mirrored front to back while the
geometry says otherwise put that bulge behind the line. The segmentation
network finds and names the bodies of a mirrored image as well, so their
centroids (RAS millimetres, where +y is anterior) tell the two apart without
another network pass.
"""

from __future__ import annotations

import numpy as np

from modic.levels.anatomy import SpineAnatomy

LUMBAR = ("L1", "L2", "L3", "L4", "L5")
MIN_BODIES = 4
"""Fewest named lumbar bodies on which the curve is measured: with three, one misplaced centroid decides."""


def lordosis_mm(anatomy: SpineAnatomy) -> float | None:
    """Signed anterior offset (mm) of the middle lumbar bodies from the chord of the first and last, or None.

    The offset of largest magnitude among the bodies between the first and the
    last named lumbar body, measured in the sagittal plane (RAS y, z)
    perpendicular to the chord joining those two, positive in front. None when
    fewer than :data:`MIN_BODIES` lumbar bodies are named.
    """
    centroids = {s.name: np.asarray(s.centroid_ras, dtype=float)[1:] for s in anatomy.vertebrae if s.name in LUMBAR}
    named = [centroids[name] for name in LUMBAR if name in centroids]
    if len(named) < MIN_BODIES:
        return None
    first, last = named[0], named[-1]
    chord = last - first
    length = float(np.linalg.norm(chord))
    if length == 0.0:
        return None
    direction = chord / length
    offsets = [float((p - first)[0] - ((p - first) @ direction) * direction[0]) for p in named[1:-1]]
    return max(offsets, key=abs)
