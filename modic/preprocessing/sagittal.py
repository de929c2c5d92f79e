"""Canonical sagittal grid for the 2D segmentation network.

The network sees sagittal slices with rows running superior->inferior and
columns anterior->posterior (head at the top, anterior on the left, as a
radiologist views them), resampled in-plane to a fixed spacing. The slice
axis keeps its native positions so that predictions map back exactly.
Intensities are scaled per slice between robust percentiles, which makes the
network indifferent to 8-bit renderings, 12/16-bit scanner ranges and
per-slice gain, and identical between the 3D and single-slice paths.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, ScaleIntensityRangePercentiles, Spacing

from modic.io.volume import Volume

NETWORK_AXCODES = "RIP"
"""Array axes on the network grid: slice index left->right, rows superior->inferior, columns anterior->posterior."""


def as_metatensor(volume: Volume) -> MetaTensor:
    """A channel-first MONAI MetaTensor carrying the volume's RAS affine."""
    return MetaTensor(torch.as_tensor(np.ascontiguousarray(volume.array, dtype=np.float32))[None],
                      affine=torch.as_tensor(volume.affine, dtype=torch.float64))


def to_network_grid(volume: Volume, *, spacing_mm: float, mode: str = "bilinear") -> MetaTensor:
    """Reorient ``volume`` to :data:`NETWORK_AXCODES` and resample rows/columns to ``spacing_mm``.

    Returns a MetaTensor of shape ``(1, slices, rows, columns)`` whose affine
    maps that grid to RAS mm. Slice positions are unchanged.
    """
    image = Orientation(axcodes=NETWORK_AXCODES)(as_metatensor(volume))
    return Spacing(pixdim=(0.0, spacing_mm, spacing_mm), mode=mode, padding_mode="border")(image)


def normalize_slices(stack: torch.Tensor, *, lower: float, upper: float) -> torch.Tensor:
    """Scale each 2D slice of ``stack`` (``(..., slices, rows, cols)``) to [0, 1] between its percentiles.

    A blank slice (upper percentile equal to the lower) becomes all zeros.
    """
    scaler = ScaleIntensityRangePercentiles(lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=True)
    flat = torch.as_tensor(stack).as_subclass(torch.Tensor).reshape(-1, *stack.shape[-2:]).float()
    out = torch.zeros_like(flat)
    for index, plane in enumerate(flat.numpy()):
        low, high = np.percentile(plane, [lower, upper])
        if high > low:
            out[index] = torch.as_tensor(np.asarray(scaler(plane[None]))[0])
    return out.reshape(stack.shape)
