"""Tissue relaxation properties and the signal equations that turn them into T1/T2/STIR contrast.

Each tissue is a water compartment (proton density, T1, T2) plus a fraction of
fat signal that relaxes with the shared fat compartment. Signals follow the
textbook steady-state equations, so one set of tissue properties gives
consistent contrast for every series of a study: fat bright on T1 and on fast
spin echo T2 (J-coupling makes fat's apparent T2 longer), fluid bright on T2
and STIR, fat dark on STIR and fat-saturated images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modic.synth.config import FatCompartment, Tissue, TissueModelSettings


@dataclass(frozen=True)
class Sequence:
    """The physics of one series: kind ``"se"`` (spin echo / TSE), ``"ir"`` (STIR) or ``"gre"`` (spoiled GRE)."""

    kind: str
    tr: float
    te: float
    field_strength: float
    ti: float | None = None
    flip_angle: float = 90.0
    echo_train_length: int = 1
    fat_suppression: float = 0.0
    """Fraction of fat signal removed by spectral fat saturation (0 none, 1 complete)."""


@dataclass(frozen=True)
class TissueModel:
    """All tissues of the config, with the 1.5 T to 3 T T1 scaling."""

    tissues: Mapping[str, Tissue]
    fat: FatCompartment
    water_t1_scale_3t: float
    fat_t1_scale_3t: float
    t2_star_factor: float

    @classmethod
    def from_settings(cls, settings: TissueModelSettings) -> TissueModel:
        """The model of the config's ``tissue_model`` section (every tissue the anatomy model paints)."""
        return cls(
            tissues=settings.tissues.by_name(),
            fat=settings.fat_compartment,
            water_t1_scale_3t=settings.water_t1_scale_3t,
            fat_t1_scale_3t=settings.fat_t1_scale_3t,
            t2_star_factor=settings.t2_star_factor,
        )

    def signals(self, sequence: Sequence) -> TissueSignals:
        """Water and fat signal of every tissue under ``sequence``."""
        ramp = float(np.clip((sequence.field_strength - 1.5) / 1.5, 0.0, 2.0))
        water_scale = 1.0 + ramp * (self.water_t1_scale_3t - 1.0)
        fat_scale = 1.0 + ramp * (self.fat_t1_scale_3t - 1.0)
        fat_t2 = self.fat.t2_fse if sequence.kind == "se" and sequence.echo_train_length > 1 else self.fat.t2
        if sequence.kind == "gre":
            fat_t2 = self.fat.t2_star
        fat_signal = self.fat.pd * _relaxation(sequence, self.fat.t1 * fat_scale, fat_t2)
        fat_signal *= 1.0 - sequence.fat_suppression
        water: dict[str, float] = {}
        for name, tissue in self.tissues.items():
            t2 = tissue.t2 * self.t2_star_factor if sequence.kind == "gre" else tissue.t2
            water[name] = tissue.pd * _relaxation(sequence, tissue.t1 * water_scale, t2)
        return TissueSignals(water=water, fat=float(fat_signal), tissues=self.tissues)


def _relaxation(sequence: Sequence, t1: float, t2: float) -> float:
    e1 = np.exp(-sequence.tr / t1)
    e2 = np.exp(-sequence.te / t2)
    if sequence.kind == "se":
        return float((1.0 - e1) * e2)
    if sequence.kind == "ir":
        if sequence.ti is None:
            raise ValueError("an inversion recovery sequence needs an inversion time")
        return float(abs(1.0 - 2.0 * np.exp(-sequence.ti / t1) + e1) * e2)
    if sequence.kind == "gre":
        alpha = np.deg2rad(sequence.flip_angle)
        return float(np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1) * e2)
    raise ValueError(f"unknown sequence kind {sequence.kind!r}; expected 'se', 'ir' or 'gre'")


@dataclass(frozen=True)
class TissueSignals:
    """Signals of all tissues for one sequence."""

    water: Mapping[str, float]
    fat: float
    tissues: Mapping[str, Tissue]

    def __getitem__(self, name: str) -> float:
        """Signal of tissue ``name`` at its own fat fraction."""
        ff = self.tissues[name].fat_fraction
        return (1.0 - ff) * self.water[name] + ff * self.fat

    def with_fat(self, name: str, fat_fraction: np.ndarray) -> np.ndarray:
        """Signal of tissue ``name`` with a spatially varying fat fraction."""
        w = np.float32(self.water[name])
        return w + fat_fraction * np.float32(self.fat - self.water[name])

    @property
    def brightest(self) -> float:
        """Largest signal of any tissue (used to scale images to a scanner-like range)."""
        return max([self[name] for name in self.tissues] + [self.fat])
