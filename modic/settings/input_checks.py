"""Settings of the checks that images are what they claim to be (``configs/input_checks.yaml``; ``input_checks``)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.fields import number, number_range, optional, text


@dataclass(frozen=True, kw_only=True)
class OverlapSettings:
    """How much of the T1's field of view the T2 must cover to be fused with it."""

    min_t2_coverage: float = number(0, 1)


@dataclass(frozen=True, kw_only=True)
class ContrastSettings:
    """Signal of the spinal canal against marrow, which tells swapped T1/T2 and mirrored images."""

    canal_depth_mm: tuple[float, float] = number_range(0)
    mirrored_front: float = number(0)
    mirrored_margin: float = number(0)
    mirrored_min_product: float = number(0)
    swapped_ratio: float = number(1)
    min_voxels: int = number(1, integer=True)


@dataclass(frozen=True, kw_only=True)
class OrientationSettings:
    """When an image counts as upside down (the orientation network) or mirrored (reversed lordosis)."""

    bundle: str | None = optional(text())
    upside_down_threshold: float = number(0.5, 1)
    min_lordosis_mm: float = number()


@dataclass(frozen=True, kw_only=True)
class InputCheckSettings:
    """Checks of the images' overlap, contrast and orientation (:mod:`modic.io.study`, :mod:`modic.pipeline`)."""

    overlap: OverlapSettings
    contrast: ContrastSettings
    orientation: OrientationSettings
