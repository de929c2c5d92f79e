"""Settings of reading images (``configs/io.yaml``; the ``io`` section of the analysis settings)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.fields import flag, number, texts


@dataclass(frozen=True, kw_only=True)
class ScanSettings:
    """How study folders are walked."""

    follow_symlinks: bool = flag()


@dataclass(frozen=True, kw_only=True)
class MemorySettings:
    """The guard that refuses a series too large to hold before any pixel is read."""

    max_voxels: int = number(1, integer=True)


@dataclass(frozen=True, kw_only=True)
class GeometrySettings:
    """Tolerances of a series' slice geometry (lengths in mm)."""

    min_slices: int = number(1, integer=True)
    orientation_tolerance: float = number(0)
    orthonormality_tolerance: float = number(0)
    pixel_spacing_tolerance_mm: float = number(0)
    duplicate_position_tolerance_mm: float = number(0)
    slice_spacing_tolerance_mm: float = number(0)
    slice_spacing_tolerance_fraction: float = number(0, 1)
    collinearity_tolerance_mm: float = number(0)


@dataclass(frozen=True, kw_only=True)
class ResampleSettings:
    """Tolerances of resampling one volume onto another's grid."""

    grid_tolerance_mm: float = number(0)
    axis_aligned_tolerance_voxels: float = number(0)
    edge_tolerance_voxels: float = number(0, 1)


@dataclass(frozen=True, kw_only=True)
class SingleSliceReadSettings:
    """Reading one slice from a raster or DICOM file."""

    default_thickness_mm: float = number(0.01, 100)
    raster_extensions: tuple[str, ...] = texts()


@dataclass(frozen=True, kw_only=True)
class IoSettings:
    """Limits and tolerances for reading images (:mod:`modic.io`)."""

    scan: ScanSettings
    memory: MemorySettings
    geometry: GeometrySettings
    resample: ResampleSettings
    single_slice: SingleSliceReadSettings
