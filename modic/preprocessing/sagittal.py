"""Canonical sagittal grid for the 2D segmentation network.

The network sees sagittal slices with rows running superior->inferior and
columns anterior->posterior (head at the top, anterior on the left, as a
radiologist views them), resampled in-plane to about ``spacing_mm``. The
slice axis keeps its native positions so predictions map back exactly.

Reorientation is MONAI's ``Orientation`` (a permutation/flip); in-plane
resampling is MONAI's ``Resize`` with ``align_corners=True`` applied to the
slices as channels, so the first and last pixel centres stay in place and
the mapping back (:func:`from_network_grid`) is the exact inverse. The
in-plane spacing on the grid is therefore within a fraction of a percent of
``spacing_mm``, and exactly what the returned affine says.

Intensities are scaled per slice between robust percentiles, which makes the
network indifferent to 8-bit renderings, 12/16-bit scanner ranges and
per-slice gain, and identical between the 3D and single-slice paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Resize

from modic.io.volume import Volume

RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
"""Axis labels of RAS+ space, passed explicitly to MONAI's Orientation."""

NETWORK_AXCODES = "RIP"
"""Array axes on the network grid: slice index left->right, rows superior->inferior, columns anterior->posterior."""


@dataclass(frozen=True)
class NetworkGrid:
    """A volume on the network grid and what is needed to map results back.

    Attributes:
        stack: ``(slices, rows, cols)`` float32 intensities (not normalised).
        affine: voxel-to-RAS affine of ``stack``.
        oriented_shape: ``(slices, rows, cols)`` before in-plane resizing.
        oriented_affine: affine of the reoriented volume before resizing.
        source_axcodes: orientation codes of the source volume.
    """

    stack: torch.Tensor
    affine: np.ndarray
    oriented_shape: tuple[int, int, int]
    oriented_affine: np.ndarray
    source_axcodes: str

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between the sagittal slices of ``stack`` (the source's, which the grid keeps)."""
        return float(np.linalg.norm(self.affine[:3, 0]))


def as_metatensor(volume: Volume) -> MetaTensor:
    """A channel-first MONAI MetaTensor carrying the volume's RAS affine."""
    return MetaTensor(
        torch.as_tensor(np.ascontiguousarray(volume.array, dtype=np.float32))[None],
        affine=torch.as_tensor(volume.affine, dtype=torch.float64),
    )


def grid_shape(oriented_shape: tuple[int, int, int], spacing: np.ndarray, spacing_mm: float) -> tuple[int, int]:
    """Rows and columns on the network grid for an oriented in-plane shape and spacing."""
    return tuple(  # type: ignore[return-value]
        max(int(round((n - 1) * s / spacing_mm)) + 1, 1) for n, s in zip(oriented_shape[1:], spacing[1:])
    )


def sagittal_slices(volume: Volume) -> tuple[int, float]:
    """How many sagittal slices ``volume`` has on the network grid and how far apart they are (mm).

    The same as ``oriented_shape[0]`` and the first column's length of the
    affine of :func:`to_network_grid`, without resizing the image.
    """
    oriented = Orientation(axcodes=NETWORK_AXCODES, labels=RAS_LABELS)(as_metatensor(volume))
    return int(oriented.shape[1]), float(np.linalg.norm(np.asarray(oriented.affine, dtype=float)[:3, 0]))


def to_network_grid(volume: Volume, *, spacing_mm: float, mode: str = "bilinear") -> NetworkGrid:
    """Reorient ``volume`` to :data:`NETWORK_AXCODES` and resize rows/columns to about ``spacing_mm``."""
    oriented = Orientation(axcodes=NETWORK_AXCODES, labels=RAS_LABELS)(as_metatensor(volume))
    affine = np.asarray(oriented.affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    shape = tuple(int(n) for n in oriented.shape[1:])
    rows, cols = grid_shape(shape, spacing, spacing_mm)
    stack = torch.as_tensor(oriented[0]).as_subclass(torch.Tensor)
    resized = _resize(stack, (rows, cols), mode=mode)
    scale = np.ones(4)
    scale[1] = (shape[1] - 1) / (rows - 1) if rows > 1 else 1.0
    scale[2] = (shape[2] - 1) / (cols - 1) if cols > 1 else 1.0
    return NetworkGrid(
        stack=resized,
        affine=affine @ np.diag(scale),
        oriented_shape=shape,  # type: ignore[arg-type]
        oriented_affine=affine,
        source_axcodes="".join(volume.axcodes),
    )


def from_network_grid(values: torch.Tensor, grid: NetworkGrid, *, mode: str = "bilinear") -> np.ndarray:
    """Map ``(channels, slices, rows, cols)`` values on ``grid`` back to the source volume's array axes."""
    channels = values.shape[0]
    slices, rows, cols = grid.oriented_shape
    flat = values.reshape(channels * slices, *values.shape[-2:])
    restored = _resize(flat, (rows, cols), mode=mode).reshape(channels, slices, rows, cols)
    oriented = MetaTensor(restored, affine=torch.as_tensor(grid.oriented_affine))
    back = Orientation(axcodes=grid.source_axcodes, labels=RAS_LABELS)(oriented)
    return np.asarray(back.as_tensor() if isinstance(back, MetaTensor) else back, dtype=np.float32)


def _resize(stack: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """Resize the last two axes of ``(n, rows, cols)``; identity when the size already matches."""
    if tuple(stack.shape[-2:]) == tuple(size):
        return stack.float()
    kwargs = {"align_corners": True} if mode in {"bilinear", "bicubic"} else {}
    out = Resize(spatial_size=size, mode=mode, **kwargs)(stack.float())
    return torch.as_tensor(out).as_subclass(torch.Tensor)


def normalize_slices(stack: torch.Tensor | np.ndarray, *, lower: float, upper: float) -> torch.Tensor:
    """Scale each 2D slice of ``(..., rows, cols)`` to [0, 1] between its ``lower``/``upper`` percentiles.

    The same arithmetic as MONAI's ``ScaleIntensityRangePercentiles(b_min=0,
    b_max=1, clip=True)`` used in training (linear percentile
    interpolation), vectorised over slices. A blank slice becomes zeros.
    """
    array = torch.as_tensor(stack).as_subclass(torch.Tensor).float().numpy()
    flat = array.reshape(-1, array.shape[-2] * array.shape[-1])
    low, high = np.percentile(flat, [lower, upper], axis=1)
    span = high - low
    safe = np.where(span > 0, span, 1.0)
    scaled = np.clip((flat - low[:, None]) / safe[:, None], 0.0, 1.0)
    scaled[span <= 0] = 0.0
    return torch.from_numpy(scaled.reshape(array.shape).astype(np.float32))


def with_slice_context(stack: torch.Tensor | np.ndarray, *, spacing_mm: float, context_mm: float) -> torch.Tensor:
    """``(slices, 3, rows, cols)``: each slice of ``(slices, rows, cols)`` between its neighbours ``context_mm`` away.

    The input of a network that reads a sagittal slice with its neighbours
    (the 2.5D thin-slice segmentation): channel 0 lies ``context_mm`` to one
    side, channel 1 is the slice itself, channel 2 lies ``context_mm`` to the
    other side. Positions between slices ``spacing_mm`` apart are interpolated
    linearly; beyond the first or last slice the edge slice stands in, as
    nothing is known there.
    """
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm}")
    if not context_mm > 0:
        raise ValueError(f"context_mm must be positive, got {context_mm}")
    slices = torch.as_tensor(stack).as_subclass(torch.Tensor).float()
    positions = torch.arange(slices.shape[0], dtype=torch.float64)
    offset = context_mm / spacing_mm
    return torch.stack(
        [slices_at(slices, positions - offset), slices, slices_at(slices, positions + offset)], dim=1
    )


def slices_at(stack: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``stack`` ``(slices, rows, cols)`` interpolated linearly at fractional slice ``positions`` (clamped to it)."""
    clamped = positions.clamp(0, stack.shape[0] - 1)
    low = clamped.floor().long()
    high = (low + 1).clamp(max=stack.shape[0] - 1)
    weight = (clamped - low).to(stack.dtype)[:, None, None]
    return stack[low] * (1 - weight) + stack[high] * weight
