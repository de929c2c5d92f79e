"""Signal features of endplate marrow bands.

Every value is relative to the median of the reference marrow of the same
vertebral body (see :mod:`modic.levels.endplates`), which cancels scanner
gain, field strength, bias field and 8-bit windowing. Per voxel, relative T1
and T2 are compared with thresholds to find the Modic patterns:
type 1 (T1 low, T2 high), type 2 (T1 high, T2 iso to high), type 3 (T1 low,
T2 low).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from modic.arrays import bounding_box
from modic.classification.disc import DiscFeatures
from modic.levels import EndplateRegion, SpineAnatomy
from modic.settings import VoxelSettings

FEATURE_NAMES: tuple[str, ...] = (
    "t1_ratio_median", "t1_ratio_p25", "t1_ratio_p75", "t1_low_fraction", "t1_high_fraction", "t1_reference_cv",
    "t2_ratio_median", "t2_ratio_p25", "t2_ratio_p75", "t2_low_fraction", "t2_high_fraction", "t2_reference_cv",
    "type1_fraction", "type2_fraction", "type3_fraction",
    "t1_patient_ratio", "t2_patient_ratio", "band_depth_fraction", "band_voxels_log",
)
"""Order of the feature vector used by the learned classifier."""


@dataclass(frozen=True)
class SignalStats:
    """Band signal of one sequence relative to the reference marrow."""

    ratio_median: float
    ratio_p25: float
    ratio_p75: float
    ratio_p10: float
    ratio_p90: float
    low_fraction: float
    high_fraction: float
    reference_median: float
    reference_cv: float
    patient_ratio: float


@dataclass(frozen=True)
class EndplateFeatures:
    """Features of one endplate band; ``t1``/``t2`` are None when that sequence is absent.

    ``patches`` (spine-aligned T1/T2 patches, :mod:`modic.classification.patches`)
    are only computed for classifiers that use them. ``reference_part`` says
    which part of the reference region the signal was measured against
    (:mod:`modic.classification.reference`). ``disc`` describes the adjacent
    disc (:mod:`modic.classification.disc`; None when it was not segmented).
    """

    endplate: str
    t1: SignalStats | None
    t2: SignalStats | None
    pattern_fractions: dict[int, float]
    pattern_masks: dict[int, np.ndarray] = field(repr=False, compare=False)
    band_depth_fraction: float
    band_voxels: int
    patches: np.ndarray | None = field(default=None, repr=False, compare=False)
    reference_part: str = "whole"
    disc: DiscFeatures | None = None

    @property
    def both_sequences(self) -> bool:
        """Whether the band was read on T1 and T2 (only then can types 1 and 3 be told apart)."""
        return self.t1 is not None and self.t2 is not None

    def vector(self) -> np.ndarray:
        """Feature vector in :data:`FEATURE_NAMES` order (NaN for an absent sequence)."""
        def stats(s: SignalStats | None) -> list[float]:
            if s is None:
                return [np.nan] * 6
            return [s.ratio_median, s.ratio_p25, s.ratio_p75, s.low_fraction, s.high_fraction, s.reference_cv]

        return np.array(
            stats(self.t1)
            + stats(self.t2)
            + [self.pattern_fractions.get(k, np.nan) for k in (1, 2, 3)]
            + [
                self.t1.patient_ratio if self.t1 else np.nan,
                self.t2.patient_ratio if self.t2 else np.nan,
                self.band_depth_fraction,
                float(np.log1p(self.band_voxels)),
            ],
            dtype=float,
        )


def relative_signal(
    image: np.ndarray, reference: np.ndarray, *, median_filter: int, slice_axis: int
) -> tuple[np.ndarray, float]:
    """``image`` divided by the median of its ``reference`` voxels, median-filtered within each slice.

    Returns the relative image and the reference median.
    """
    values = image[reference]
    values = values[np.isfinite(values)]
    median = float(np.median(values)) if values.size else float("nan")
    if not np.isfinite(median) or median <= 0:
        return np.full(image.shape, np.nan, dtype=np.float32), median
    relative = image.astype(np.float32) / median
    if median_filter > 1:
        size = [median_filter if n > 1 else 1 for n in image.shape]
        size[slice_axis] = 1
        relative = ndimage.median_filter(relative, size=size)
    return relative, median


def endplate_features(
    anatomy: SpineAnatomy,
    region: EndplateRegion,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    settings: VoxelSettings,
    reference: np.ndarray | None = None,
) -> EndplateFeatures:
    """Features of ``region`` from T1/T2 arrays on the anatomy's grid (``settings``: ``classification.voxels``).

    ``reference`` is the reference marrow mask to measure against
    (:func:`modic.classification.reference.reference_marrow`); None: the
    region's whole reference region.
    """
    band = anatomy.endplate_map == region.label
    if reference is None:
        reference = anatomy.reference_map == region.reference_label
    all_references = anatomy.reference_map > 0
    window = _window(band | reference)
    band_w, reference_w = band[window], reference[window]
    filter_size = int(settings.median_filter)

    def sequence(image: np.ndarray | None, low: float, high: float) -> tuple[SignalStats | None, np.ndarray | None]:
        if image is None:
            return None, None
        relative, median = relative_signal(
            image[window], reference_w, median_filter=filter_size, slice_axis=anatomy.slice_axis
        )
        values = relative[band_w]
        values = values[np.isfinite(values)]
        if not values.size or not np.isfinite(median):
            return None, None
        patient_values = image[all_references]
        patient_values = patient_values[np.isfinite(patient_values)]
        patient_median = float(np.median(patient_values)) if patient_values.size else median
        reference_values = image[window][reference_w].astype(float)
        reference_values = reference_values[np.isfinite(reference_values)]
        cv = float(ndimage.standard_deviation(reference_values) / max(median, 1e-6)) if reference_values.size else np.nan
        stats = SignalStats(
            ratio_median=float(np.median(values)),
            ratio_p25=float(np.percentile(values, 25)),
            ratio_p75=float(np.percentile(values, 75)),
            ratio_p10=float(np.percentile(values, 10)),
            ratio_p90=float(np.percentile(values, 90)),
            low_fraction=float(np.mean(values < low)),
            high_fraction=float(np.mean(values > high)),
            reference_median=median,
            reference_cv=cv,
            patient_ratio=float(np.nanmedian(image[window][band_w]) / max(patient_median, 1e-6)),
        )
        return stats, relative

    t1_stats, t1_rel = sequence(t1, float(settings.t1_low), float(settings.t1_high))
    t2_stats, t2_rel = sequence(t2, float(settings.t2_low), float(settings.t2_high))
    masks = pattern_masks(t1_rel, t2_rel, band_w, settings)
    n_band = int(band_w.sum())
    fractions = {k: float(m[band_w].mean()) if n_band else 0.0 for k, m in masks.items()}
    full_masks = {}
    for k, m in masks.items():
        full = np.zeros(band.shape, dtype=bool)
        full[window] = m & band_w
        full_masks[k] = full
    return EndplateFeatures(
        endplate=region.name,
        t1=t1_stats,
        t2=t2_stats,
        pattern_fractions=fractions,
        pattern_masks=full_masks,
        band_depth_fraction=region.depth_mm / max(region.body_height_mm, 1e-6),
        band_voxels=n_band,
    )


def pattern_masks(
    t1_rel: np.ndarray | None, t2_rel: np.ndarray | None, band: np.ndarray, settings: VoxelSettings
) -> dict[int, np.ndarray]:
    """Voxels showing each Modic pattern. With one sequence only, only what it can show is marked.

    Type 1 with both sequences needs T2 high and T1 under ``type1_t1_low``: a
    raised T2 already marks water, so a milder T1 drop than ``t1_low`` counts.
    With T1 alone, low T1 (under ``t1_low``) is marked as type 1 (it may be 3)
    and high T1 as type 2; with T2 alone, nothing separates the types reliably
    and no mask is returned.
    """
    t1_low, t1_high = float(settings.t1_low), float(settings.t1_high)
    t2_low, t2_high, t2_iso = float(settings.t2_low), float(settings.t2_high), float(settings.t2_iso_min)
    if t1_rel is not None and t2_rel is not None:
        return {
            1: band & (t1_rel < float(settings.type1_t1_low)) & (t2_rel > t2_high),
            2: band & (t1_rel > t1_high) & (t2_rel >= t2_iso),
            3: band & (t1_rel < t1_low) & (t2_rel < t2_low),
        }
    if t1_rel is not None:
        return {1: band & (t1_rel < t1_low), 2: band & (t1_rel > t1_high)}
    return {}


def _window(mask: np.ndarray, margin: int = 2) -> tuple[slice, ...]:
    return bounding_box(mask, margin) or tuple(slice(0, 0) for _ in mask.shape)
