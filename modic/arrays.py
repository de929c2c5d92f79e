"""Array helpers shared by the pipeline stages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[slice, ...] | None:
    """The smallest box holding every True element of ``mask``, grown by ``margin`` and clipped to the array.

    ``margin`` is in elements, one number for every axis or one per axis. Returns
    None when ``mask`` holds nothing.
    """
    found = ndimage.find_objects(np.asarray(mask, dtype=np.uint8))
    if not found or found[0] is None:
        return None
    margins = np.broadcast_to(np.asarray(margin, dtype=int), (mask.ndim,))
    return tuple(
        slice(max(box.start - int(m), 0), min(box.stop + int(m), n))
        for box, m, n in zip(found[0], margins, mask.shape)
    )
