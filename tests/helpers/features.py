"""Endplate features for classification tests: bands with chosen signal ratios and pattern fractions."""

from __future__ import annotations

from modic.classification.features import EndplateFeatures, SignalStats


def stats(ratio: float, *, reference: float = 100.0) -> SignalStats:
    return SignalStats(
        ratio_median=ratio, ratio_p25=ratio - 0.05, ratio_p75=ratio + 0.05, ratio_p10=ratio - 0.1,
        ratio_p90=ratio + 0.1, low_fraction=0.0, high_fraction=0.0, reference_median=reference,
        reference_cv=0.1, patient_ratio=1.0,
    )


def band(endplate: str = "L4 inferior", *, t1: float | None = 1.0, t2: float | None = 1.0,
         fractions: dict[int, float] | None = None, t1_reference: float = 100.0,
         t2_reference: float = 100.0) -> EndplateFeatures:
    return EndplateFeatures(
        endplate=endplate,
        t1=None if t1 is None else stats(t1, reference=t1_reference),
        t2=None if t2 is None else stats(t2, reference=t2_reference),
        pattern_fractions=fractions or {1: 0.0, 2: 0.0, 3: 0.0},
        pattern_masks={},
        band_depth_fraction=0.2,
        band_voxels=100,
    )
