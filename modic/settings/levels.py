"""Settings of the levels stage: instances and level names (``levels``) and endplate regions (``endplates``)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.enums import DepthMode
from modic.settings.fields import choice, levels, number, number_range


@dataclass(frozen=True, kw_only=True)
class LevelsSettings:
    """Which levels are graded and the sizes and ratios that find and name the structures.

    Sizes come in pairs: areas (mm2) for a single slice, volumes (mm3) for a
    3D series; :meth:`size` picks one.
    """

    graded: tuple[str, ...] = levels()
    min_vertebra_area_mm2: float = number(0)
    min_vertebra_volume_mm3: float = number(0)
    min_s1_area_mm2: float = number(0)
    min_s1_volume_mm3: float = number(0)
    min_disc_area_mm2: float = number(0)
    min_disc_volume_mm3: float = number(0)
    max_vertebra_area_mm2: float = number(1)
    max_vertebra_volume_mm3: float = number(1)
    min_relative_size: float = number(0, 1)
    max_off_column_mm: float = number(0)
    min_step_fraction: float = number(0, 1)
    lateral_trim_fraction: float = number(0, 1)
    disc_separation_mm: float = number(0, 10)
    merge_factor: float = number(1.1)
    split_min_fraction: float = number(0, 1)
    s1_fraction: float = number(0, 1)
    min_s1_relative_size: float = number(0, 10)
    gap_factor: float = number(1)
    transitional_disc_ratio: float = number(0, 1)
    transitional_disc_length_ratio: float = number(0, 1)
    transitional_disc_min_size: float = number(0, 10)
    transitional_disc_distance: float = number(0, 10)

    def min_vertebra(self, *, single_slice: bool) -> float:
        """Smallest vertebral body: an area for a single slice, a volume for a 3D series."""
        return float(self.min_vertebra_area_mm2 if single_slice else self.min_vertebra_volume_mm3)

    def min_s1(self, *, single_slice: bool) -> float:
        """Smallest S1, as :meth:`min_vertebra`."""
        return float(self.min_s1_area_mm2 if single_slice else self.min_s1_volume_mm3)

    def min_disc(self, *, single_slice: bool) -> float:
        """Smallest disc, as :meth:`min_vertebra`."""
        return float(self.min_disc_area_mm2 if single_slice else self.min_disc_volume_mm3)

    def max_vertebra(self, *, single_slice: bool) -> float:
        """Largest single vertebral body, as :meth:`min_vertebra`."""
        return float(self.max_vertebra_area_mm2 if single_slice else self.max_vertebra_volume_mm3)


@dataclass(frozen=True, kw_only=True)
class DepthSettings:
    """Depth of the marrow band under each endplate."""

    mode: DepthMode = choice(DepthMode)
    value: float = number(0)

    def millimetres(self, *, body_height_mm: float) -> float:
        """The depth in mm for a body of ``body_height_mm``."""
        return float(self.value) * (body_height_mm if self.mode is DepthMode.FRACTION else 1.0)


@dataclass(frozen=True, kw_only=True)
class EndplateSettings:
    """Where the endplate bands and the reference marrow lie in each vertebral body."""

    depth: DepthSettings
    exclude_mm: float = number(0, 10)
    rim_mm: float = number(0, 10)
    max_lateral_fraction: float = number(0.1, 5)
    reference_height: tuple[float, float] = number_range(0, 1)
    reference_ap: float = number(0, 1)
    min_band_voxels: int = number(0, integer=True)
    min_reference_voxels: int = number(0, integer=True)
