"""Spine-aligned T1/T2 patches of each endplate, for the patch classifier.

A patch is sampled on a grid attached to the endplate: rows run from the
disc into the vertebral body along the spine axis (so superior and inferior
endplates look alike, endplate at the top), columns run anterior to
posterior. Channels: T1 and T2 divided by the median of the same body's
reference marrow (so scanner gain, 8-bit windowing and bias cancel), and the
endplate band mask, which tells the network where the region is. For a 3D
series one patch is taken per sagittal slice crossing the band.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from modic.levels import EndplateRegion, SpineAnatomy
from modic.levels.endplates import LATERAL
from modic.settings import PatchSettings

CHANNELS = ("t1_relative", "t2_relative", "band")


@dataclass(frozen=True)
class PatchGrid:
    """Patch geometry (``classification.patches`` of the settings, or a bundle's ``patches``)."""

    rows: int
    cols: int
    spacing_mm: float
    disc_side_mm: float
    max_relative: float

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PatchGrid:
        return cls(
            rows=int(data["rows"]),
            cols=int(data["cols"]),
            spacing_mm=float(data["spacing_mm"]),
            disc_side_mm=float(data["disc_side_mm"]),
            max_relative=float(data["max_relative"]),
        )

    @classmethod
    def from_settings(cls, patches: PatchSettings) -> PatchGrid:
        """The grid of ``classification.patches`` in the analysis settings."""
        return cls(
            rows=int(patches.rows),
            cols=int(patches.cols),
            spacing_mm=float(patches.spacing_mm),
            disc_side_mm=float(patches.disc_side_mm),
            max_relative=float(patches.max_relative),
        )


def endplate_patches(
    anatomy: SpineAnatomy,
    region: EndplateRegion,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    grid: PatchGrid,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """Patches ``(n_slices, 3, rows, cols)`` of one endplate; empty when its band is empty.

    ``reference``: the reference marrow mask, as for
    :func:`modic.classification.features.endplate_features`.
    """
    band = anatomy.endplate_map == region.label
    if not band.any():
        return np.zeros((0, len(CHANNELS), grid.rows, grid.cols), dtype=np.float32)
    geometry = anatomy.geometry
    if reference is None:
        reference = anatomy.reference_map == region.reference_label
    into_body, ap = _frame(anatomy.spine_axes.get(region.vertebra, np.array([0.0, 0.0, 1.0])), region.side)
    band_points = geometry.world_coordinates(np.argwhere(band))
    depth = band_points @ into_body
    centre_ap = float(np.median(band_points @ ap))
    top = float(np.percentile(depth, 2))

    channels = [
        _relative(t1, reference, grid.max_relative),
        _relative(t2, reference, grid.max_relative),
        band.astype(np.float32),
    ]
    slice_axis = anatomy.slice_axis
    slices = np.unique(np.argwhere(band)[:, slice_axis])
    inverse = np.linalg.inv(geometry.affine)
    u = top - grid.disc_side_mm + np.arange(grid.rows) * grid.spacing_mm
    v = centre_ap + (np.arange(grid.cols) - (grid.cols - 1) / 2) * grid.spacing_mm
    patches = []
    for index in slices:
        in_slice = np.argwhere(band)[:, slice_axis] == index
        lateral = float(np.median(band_points[in_slice] @ LATERAL))
        world = (
            lateral * LATERAL[None, None, :]
            + u[:, None, None] * into_body[None, None, :]
            + v[None, :, None] * ap[None, None, :]
        )
        voxel = world.reshape(-1, 3) @ inverse[:3, :3].T + inverse[:3, 3]
        voxel[:, slice_axis] = index
        patch = [
            ndimage.map_coordinates(c, voxel.T, order=1, mode="constant", cval=0.0).reshape(grid.rows, grid.cols)
            if c is not None else np.zeros((grid.rows, grid.cols), dtype=np.float32)
            for c in channels
        ]
        patches.append(np.stack(patch))
    return np.asarray(patches, dtype=np.float32)


def _frame(spine_axis: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal in-plane directions (with :data:`LATERAL`): from the disc into the body, and anterior to posterior."""
    axis = spine_axis - (spine_axis @ LATERAL) * LATERAL
    axis /= max(np.linalg.norm(axis), 1e-9)
    into_body = -axis if side == "superior" else axis
    ap = np.cross(into_body, LATERAL)
    if ap[1] > 0:
        ap = -ap
    return into_body, ap


def _relative(image: np.ndarray | None, reference: np.ndarray, ceiling: float) -> np.ndarray | None:
    if image is None:
        return None
    values = image[reference]
    values = values[np.isfinite(values)]
    median = float(np.median(values)) if values.size else 0.0
    if median <= 0:
        return None
    relative = np.nan_to_num(image.astype(np.float32) / median, nan=0.0)
    return np.clip(relative, 0.0, ceiling)
