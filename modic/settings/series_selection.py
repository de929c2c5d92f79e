"""Settings of series classification and selection (``configs/series_selection.yaml``; the ``series_selection`` section)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.enums import Plane, Weighting
from modic.settings.fields import FrozenMap, choice, choices, number, number_range, patterns, table, texts


@dataclass(frozen=True, kw_only=True)
class ImageTypeSettings:
    """ImageType values that mark localizers and derived images."""

    localizer: tuple[str, ...] = texts()
    derived_value_1: tuple[str, ...] = texts()
    derived_value_2: tuple[str, ...] = texts()


@dataclass(frozen=True, kw_only=True)
class PlaneSettings:
    """Angles (degrees) that tell planes, slice blocks and localizers apart."""

    oblique_tolerance_deg: float = number(0, 90)
    same_orientation_deg: float = number(0, 90)
    localizer_angle_deg: float = number(0, 90)


@dataclass(frozen=True, kw_only=True)
class DescriptionPatterns:
    """Regular expressions searched in the lower-cased SeriesDescription."""

    localizer: tuple[str, ...] = patterns()
    derived: tuple[str, ...] = patterns()
    stir: tuple[str, ...] = patterns()
    flair: tuple[str, ...] = patterns()
    fat_suppressed: tuple[str, ...] = patterns()
    t2_star: tuple[str, ...] = patterns()
    t1: tuple[str, ...] = patterns()
    t2: tuple[str, ...] = patterns()
    pd: tuple[str, ...] = patterns()
    contrast: tuple[str, ...] = patterns()


@dataclass(frozen=True, kw_only=True)
class T1Physics:
    """Spin-echo T1 weighting: short TR and short TE (ms)."""

    max_repetition_time: float = number(0)
    max_echo_time: float = number(0)


@dataclass(frozen=True, kw_only=True)
class T2Physics:
    """Spin-echo T2 weighting: long TR and long TE (ms)."""

    min_repetition_time: float = number(0)
    min_echo_time: float = number(0)


@dataclass(frozen=True, kw_only=True)
class PdPhysics:
    """Proton-density weighting: long TR and short TE (ms)."""

    min_repetition_time: float = number(0)
    max_echo_time: float = number(0)


@dataclass(frozen=True, kw_only=True)
class PhysicsSettings:
    """Weighting from the acquisition parameters (times in ms)."""

    t1: T1Physics
    t2: T2Physics
    pd: PdPhysics
    stir_inversion_time: tuple[float, float] = number_range(0)
    t1_inversion_time: tuple[float, float] = number_range(0)
    flair_inversion_time: tuple[float, float] = number_range(0)
    fat_sat_scan_options: tuple[str, ...] = texts()


@dataclass(frozen=True, kw_only=True)
class ChoiceSettings:
    """Which series are candidates for the T1 and the T2."""

    t1_weightings: tuple[Weighting, ...] = choices(Weighting)
    t2_weightings: tuple[Weighting, ...] = choices(Weighting)
    plane: Plane = choice(Plane)


@dataclass(frozen=True, kw_only=True)
class SeriesSelectionSettings:
    """How the series of a study are classified and the sagittal T1 and T2 chosen (:mod:`modic.io.series_select`)."""

    modalities: tuple[str, ...] = texts()
    image_sop_classes: FrozenMap = table()
    unsupported_sop_classes: FrozenMap = table()
    secondary_capture_sop_classes: tuple[str, ...] = texts()
    image_type: ImageTypeSettings
    plane: PlaneSettings
    description_patterns: DescriptionPatterns
    physics: PhysicsSettings
    selection: ChoiceSettings
