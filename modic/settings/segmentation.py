"""Settings of the segmentation stage (``segmentation`` in ``configs/analysis.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.enums import CpuPrecision
from modic.settings.fields import choice, number, optional, text


@dataclass(frozen=True, kw_only=True)
class SegmentationSettings:
    """The network bundles and how they run."""

    bundle: str = text()
    thin_slice_bundle: str | None = optional(text())
    thin_slice_max_spacing_mm: float = number(0.1, 10)
    batch_size: int = number(1, integer=True)
    cpu_precision: CpuPrecision = choice(CpuPrecision)
    min_field_of_view_mm: float = number(1)
