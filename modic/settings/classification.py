"""Settings of the classification stage (``classification`` in ``configs/analysis.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.enums import ClassifierMethod
from modic.settings.fields import choice, number, optional, significance, text


@dataclass(frozen=True, kw_only=True)
class PatchSettings:
    """Spine-aligned endplate patches of the patch classifier."""

    rows: int = number(8, 256, integer=True)
    cols: int = number(8, 256, integer=True)
    spacing_mm: float = number(0.1, 5)
    disc_side_mm: float = number(0, 50)
    max_relative: float = number(1)


@dataclass(frozen=True, kw_only=True)
class VoxelSettings:
    """Relative-signal thresholds of each band voxel (against the reference marrow)."""

    median_filter: int = number(1, 15, integer=True)
    t1_low: float = number(0)
    t1_high: float = number(0)
    t2_low: float = number(0)
    t2_high: float = number(0)
    t2_iso_min: float = number(0)
    type1_t1_low: float = number(0)
    reference_half_difference: float | None = optional(number(0))


@dataclass(frozen=True, kw_only=True)
class RuleSettings:
    """Decision thresholds of the rule classifier on the pattern fractions of a band."""

    min_fraction: float = number(0, 1)
    type1_min_fraction: float = number(0, 1)
    mixed_fraction: float = number(0, 1)
    confidence_scale: float = number(1e-6)
    single_sequence_confidence: float = number(0, 1)


@dataclass(frozen=True, kw_only=True)
class WholeBodySettings:
    """Margins of a whole body's marrow against the other bodies of the study (``whole_body_change``)."""

    t1_high: float = number(1, 10)
    t2_high: float = number(1, 10)
    low: float = number(0, 1)


@dataclass(frozen=True, kw_only=True)
class ClassificationSettings:
    """Which classifier grades the endplates, its bundles and thresholds."""

    method: ClassifierMethod = choice(ClassifierMethod)
    learned_bundle: str = text()
    patch_bundle: str = text()
    patches: PatchSettings
    level_significance: tuple[int, ...] = significance()
    voxels: VoxelSettings
    rules: RuleSettings
    low_confidence: float = number(0, 1)
    presence_bundle: str | None = optional(text())
    strong_pattern_fraction: float = number(0, 1)
    strong_type1_fraction: float = number(0, 1)
    whole_body: WholeBodySettings
