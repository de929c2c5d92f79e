"""The picture the orientation network sees: one sagittal slice, head up and front left as the geometry says.

The slice is reoriented with MONAI's ``Orientation`` to the segmentation
network's axes (rows superior to inferior, columns anterior to posterior,
:data:`~modic.preprocessing.sagittal.NETWORK_AXCODES`), so that a correct
image shows the head at the top whatever its array layout. Pixels stored
head to foot while the geometry says otherwise then show the head at the
bottom: that is what the network is trained to see. The slice is resized
with its physical aspect ratio kept so that its longer side spans ``size``
pixels, centred on a ``size`` x ``size`` square, and scaled to [0, 1]
between robust percentiles (the same arithmetic as the segmentation input),
which makes 8-bit renderings and 16-bit scanner ranges alike.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Orientation, Resize

from modic.io.volume import Volume
from modic.preprocessing.sagittal import NETWORK_AXCODES, RAS_LABELS, as_metatensor, normalize_slices

PERCENTILES = (1.0, 99.0)
"""Intensities between these percentiles of the slice map to [0, 1]."""


def sagittal_view(volume: Volume, *, size: int, offset: int = 0) -> np.ndarray:
    """``(size, size)`` float32 picture of the sagittal slice ``offset`` slices from the middle of ``volume``.

    Rows run from superior to inferior and columns from anterior to
    posterior according to ``volume.affine``; the offset is clamped to the
    volume. See the module docstring for scaling and padding.
    """
    oriented = Orientation(axcodes=NETWORK_AXCODES, labels=RAS_LABELS)(as_metatensor(volume))
    affine = np.asarray(oriented.affine, dtype=float)
    row_mm, col_mm = np.linalg.norm(affine[:3, 1:3], axis=0)
    slices = int(oriented.shape[1])
    index = min(max(slices // 2 + offset, 0), slices - 1)
    image = torch.as_tensor(oriented[0, index]).as_subclass(torch.Tensor).float()
    height, width = image.shape[0] * row_mm, image.shape[1] * col_mm
    pixel_mm = max(height, width) / size
    rows = min(max(int(round(height / pixel_mm)), 1), size)
    cols = min(max(int(round(width / pixel_mm)), 1), size)
    resized = torch.as_tensor(Resize(spatial_size=(rows, cols), mode="area")(image[None])[0]).as_subclass(torch.Tensor)
    scaled = normalize_slices(resized, lower=PERCENTILES[0], upper=PERCENTILES[1]).numpy()
    picture = np.zeros((size, size), dtype=np.float32)
    top, left = (size - rows) // 2, (size - cols) // 2
    picture[top : top + rows, left : left + cols] = scaled
    return picture


def sagittal_slice_count(volume: Volume) -> int:
    """How many sagittal slices ``volume`` has (the range of ``offset`` in :func:`sagittal_view`)."""
    return int(volume.shape[volume.lateral_axis])
