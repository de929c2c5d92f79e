"""Grade each endplate and level: the classification stage's entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from scipy import ndimage

from modic.arrays import bounding_box
from modic.classification.disc import disc_features, measure_discs
from modic.classification.features import EndplateFeatures, endplate_features
from modic.classification.patches import PatchGrid, endplate_patches
from modic.classification.presence import PresenceModels, noisy_or, presence_vector
from modic.classification.type_probability import TypeModel, band_row, level_fraction_row
from modic.classification.reference import reference_marrow
from modic.levels import SpineAnatomy
from modic.levels.endplates import body_frame
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST, level_endplates
from modic.results import Decision, EndplateGrade, LevelGrade
from modic.settings import ClassificationSettings


class EndplateClassifier(Protocol):
    name: str

    def decide(self, features: EndplateFeatures) -> Decision: ...


@dataclass(frozen=True)
class Presence:
    """The presence model's reading of one level: per-endplate and level probabilities and the verdict."""

    endplate_probabilities: tuple[float, ...]
    level_probability: float
    threshold: float

    @property
    def changed(self) -> bool:
        return self.level_probability >= self.threshold


def grade_study(
    anatomy: SpineAnatomy,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    classifier: EndplateClassifier,
    config: ClassificationSettings,
    presence: PresenceModels | None = None,
) -> list[LevelGrade]:
    """Grade every graded level of ``anatomy`` (T1/T2 arrays on its grid; either may be None).

    With ``presence`` models, each level's calibrated change probability
    gates the classifier's types (:func:`gate_by_presence`), and a bundle's
    type model adds each type's probability (:func:`with_type_probabilities`).
    """
    significance = [int(v) for v in config.level_significance]
    levels = []
    # Both endplates of a vertebra share its reference marrow: choose it once.
    references: dict[int, tuple[np.ndarray, str]] = {}
    discs = measure_discs(anatomy, t1=t1, t2=t2)
    for level in _graded_levels(anatomy):
        measured: list[tuple[str, EndplateFeatures, Decision]] = []
        for name in level_endplates(level):
            region = anatomy.endplate(name)
            if region is None:
                continue
            if region.reference_label not in references:
                references[region.reference_label] = reference_marrow(
                    anatomy, region, t1=t1, t2=t2, max_half_difference=config.voxels.reference_half_difference
                )
            reference, part = references[region.reference_label]
            features = endplate_features(
                anatomy, region, t1=t1, t2=t2, settings=config.voxels, reference=reference
            )
            features = replace(features, reference_part=part)
            if getattr(classifier, "needs_patches", False):
                grid = PatchGrid.from_settings(config.patches)
                patches = endplate_patches(anatomy, region, t1=t1, t2=t2, grid=grid, reference=reference)
                features = replace(features, patches=patches)
            measured.append((name, features, classifier.decide(features)))
        if not measured:
            continue
        disc = disc_features(level, discs, reference_medians=_reference_medians([f for _, f, _ in measured]))
        measured = [(name, replace(features, disc=disc), decision) for name, features, decision in measured]
        reading = level_presence([f for _, f, _ in measured], presence) if presence is not None else None
        decisions = [d for _, _, d in measured]
        if reading is not None:
            decisions = gate_by_presence(
                decisions, [f for _, f, _ in measured], reading,
                strong_fraction=config.strong_pattern_fraction, strong_type1_fraction=config.strong_type1_fraction,
            )
        grades = []
        for index, ((name, features, _), decision) in enumerate(zip(measured, decisions)):
            decision = evidence_limited(decision, features)
            region_fraction, height_fraction = extent(anatomy, name, features, decision.modic_type)
            grades.append(
                EndplateGrade(
                    endplate=name,
                    level=level,
                    modic_type=decision.modic_type,
                    mixed=decision.mixed,
                    confidence=decision.confidence,
                    scores=decision.scores,
                    method=classifier.name,
                    region_fraction=region_fraction,
                    height_fraction=height_fraction,
                    features=features,
                    note=decision.note,
                    presence_probability=_finite(reading.endplate_probabilities[index]) if reading else None,
                )
            )
        graded = _level_grade(level, grades, significance)
        if reading is not None and np.isfinite(reading.level_probability):
            graded = replace(graded, presence_probability=reading.level_probability, changed=reading.changed)
            if presence is not None and presence.types is not None:
                graded = with_type_probabilities(graded, presence.types)
        levels.append(graded)
    return levels


def _reference_medians(bands: Sequence[EndplateFeatures]) -> dict[str, float]:
    """Per sequence, the mean reference marrow median of a level's bands (the bodies around its disc)."""
    medians = {}
    for sequence in ("t1", "t2"):
        values = [stats.reference_median for band in bands if (stats := getattr(band, sequence)) is not None]
        values = [v for v in values if np.isfinite(v)]
        if values:
            medians[sequence] = float(np.mean(values))
    return medians


def with_type_probabilities(level: LevelGrade, model: TypeModel) -> LevelGrade:
    """``level`` with the probability of each type at the level and at each endplate read on T1 and T2."""
    rows = [band_row(g.features) for g in level.endplates]
    endplates = tuple(
        replace(g, type_probabilities=_rounded(model.probabilities(g.presence_probability, row)))
        if row is not None and g.presence_probability is not None else g
        for g, row in zip(level.endplates, rows)
    )
    combined = level_fraction_row(rows)
    if combined is None or level.presence_probability is None:
        return replace(level, endplates=endplates)
    return replace(
        level, endplates=endplates,
        type_probabilities=_rounded(model.probabilities(level.presence_probability, combined)),
    )


def _rounded(probabilities: dict[int, float]) -> dict[int, float]:
    return {k: round(v, 4) for k, v in probabilities.items()}


def level_presence(features: Sequence[EndplateFeatures], models: PresenceModels) -> Presence | None:
    """The presence reading of a level from its endplates' bands (None when no band has a variant)."""
    probabilities: list[float] = []
    thresholds: list[float] = []
    for band in features:
        model = models.for_features(band)
        if model is None:
            probabilities.append(float("nan"))
            continue
        probabilities.append(model.endplate_probability(presence_vector(band, model.variant)))
        thresholds.append(model.threshold)
    finite = [p for p in probabilities if np.isfinite(p)]
    if not finite:
        return None
    return Presence(tuple(probabilities), noisy_or(finite), max(thresholds))


def gate_by_presence(
    decisions: Sequence[Decision],
    features: Sequence[EndplateFeatures],
    reading: Presence,
    *,
    strong_fraction: float,
    strong_type1_fraction: float,
) -> list[Decision]:
    """The classifier's decisions for one level, reconciled with the level's calibrated presence.

    Types 1 and 3 are rare (under 1 % of real levels), so at a level the
    presence model calls unchanged both endplates are type 0 unless one shows
    type 1 or 3 on strong, specific evidence. Type 3's pattern (T1 and T2
    dark) also comes from cortex, partial volume with the endplate and
    clipping: it stands over at least ``strong_fraction`` of the band. Type
    1's pattern read on both sequences (T1 low *and* T2 high) is made by none
    of these: it stands over ``strong_type1_fraction``, since a small
    oedematous focus is too little signal for a model of the whole band yet a
    definite Modic 1 change. With T1 alone, low T1 may be sclerosis, and type
    1 needs ``strong_fraction`` too. At a level the model calls changed, the
    classifier's types stand, except a weak type 3 (under ``strong_fraction``),
    which reads as type 2, the prior of a changed level. When no endplate
    shows a type, the endplate with the higher probability is given type 2,
    with a note saying so, when both sequences were read: that prior-based
    call was validated on T1+T2 pairs only (with one sequence the level keeps
    its ``changed`` verdict and probability, and the endplates their types).
    With one sequence a gated endplate is no more confident than the
    classifier was (its single-sequence cap).
    """
    p = reading.level_probability

    def strong(decision: Decision, band: EndplateFeatures) -> bool:
        if decision.modic_type not in (1, 3):
            return False
        needed = strong_type1_fraction if decision.modic_type == 1 and band.both_sequences else strong_fraction
        return band.pattern_fractions.get(decision.modic_type, 0.0) >= needed

    gated: list[Decision] = []
    for decision, band in zip(decisions, features):
        if decision.modic_type is None or strong(decision, band):
            gated.append(decision)
        elif not reading.changed:
            note = f"presence probability {p:.2f} is under {reading.threshold:.2f}: no change"
            confidence = 1.0 - p if band.both_sequences else min(1.0 - p, decision.confidence)
            gated.append(Decision(0, None, round(confidence, 4), decision.scores, note=note))
        elif decision.modic_type == 3:
            share = band.pattern_fractions.get(3, 0.0)
            note = (f"presence probability {p:.2f}: changed; the type 3 pattern covers {share:.2f} of the band, "
                    f"under {strong_fraction:.2f}: type 2, the prevalent type")
            gated.append(Decision(2, None, round(p, 4), decision.scores, note=note))
        else:
            gated.append(decision)
    both_sequences = all(band.both_sequences for band in features)
    if reading.changed and both_sequences and not any(d.modic_type for d in gated):
        ranked = [i for i in np.argsort([-(x if np.isfinite(x) else -1) for x in reading.endplate_probabilities])]
        for index in ranked:
            if gated[index].modic_type == 0:
                note = f"presence probability {p:.2f}: changed, with no definite pattern; type 2, the prevalent type"
                gated[index] = Decision(2, None, round(p, 4), gated[index].scores, note=note)
                break
    return gated


def _finite(value: float) -> float | None:
    return round(float(value), 4) if np.isfinite(value) else None


def evidence_limited(decision: Decision, features: EndplateFeatures) -> Decision:
    """``decision``, or an undetermined one (type None, confidence 0) when the images cannot support it.

    Modic types are defined on T1 and T2 together: without T1 no type can be
    told; without T2 a low T1 signal may be type 1 (oedema) or 3 (sclerosis);
    an empty band measured nothing. A T1-only reading of 0 or 2 stands.
    """
    reason = None
    types = {decision.modic_type, *(int(t) for t in (decision.mixed or "").split("/") if t)}
    if features.band_voxels == 0:
        reason = "the endplate region is empty: no marrow could be measured"
    elif features.t1 is None:
        reason = "no T1 over this endplate: the Modic type cannot be determined from T2 alone"
    elif features.t2 is None and types & {1, 3}:
        reason = "no T2 over this endplate: low T1 signal may be type 1 or type 3"
    if reason is None:
        return decision
    return Decision(None, None, 0.0, decision.scores, note=reason)


def _graded_levels(anatomy: SpineAnatomy) -> list[str]:
    seen: list[str] = []
    for region in anatomy.endplates:
        vertebra = region.vertebra
        index = VERTEBRAE_CAUDAL_FIRST.index(vertebra)
        level = (
            f"{vertebra}-{VERTEBRAE_CAUDAL_FIRST[index - 1]}" if region.side == "inferior"
            else f"{VERTEBRAE_CAUDAL_FIRST[index + 1]}-{vertebra}"
        )
        if level not in seen:
            seen.append(level)
    return seen


def _level_grade(level: str, grades: Sequence[EndplateGrade], significance: Sequence[int]) -> LevelGrade:
    rank = {t: i for i, t in enumerate(significance)}
    determined = [g for g in grades if g.modic_type is not None]
    mixed_types = sorted({g.modic_type for g in determined if g.modic_type} | _mixed_types(determined))
    mixed = "/".join(str(t) for t in mixed_types) if len(mixed_types) > 1 else None
    if len(determined) < len(grades) and not mixed_types:
        return LevelGrade(level=level, modic_type=None, mixed=None, confidence=0.0, endplates=tuple(grades))
    top = min(determined, key=lambda g: (rank.get(g.modic_type, len(rank)), -g.confidence))
    return LevelGrade(level=level, modic_type=top.modic_type, mixed=mixed, confidence=top.confidence, endplates=tuple(grades))


def _mixed_types(grades: Sequence[EndplateGrade]) -> set[int]:
    return {int(t) for g in grades if g.mixed for t in g.mixed.split("/")}


def extent(
    anatomy: SpineAnatomy, endplate: str, features: EndplateFeatures, modic_type: int | None
) -> tuple[float, float]:
    """Fraction of the band, and of the body height from the endplate, showing the type's pattern.

    The height fraction is how far the pattern voxels reach from the endplate
    along the spine axis, over the vertebral body height
    (:attr:`modic.levels.endplates.BodyFrame.height_mm`, the one definition);
    the band itself reaches ``depth_mm`` into the body.
    """
    if not modic_type or modic_type not in features.pattern_masks:
        return 0.0, 0.0
    affected = features.pattern_masks[modic_type]
    region = anatomy.endplate(endplate)
    if region is None or not affected.any():
        return 0.0, 0.0
    affected = _largest_components(affected)
    band_fraction = float(affected.sum() / max(region.n_voxels, 1))
    vertebra_value = VERTEBRAE_CAUDAL_FIRST.index(region.vertebra) + 1
    body = anatomy.vertebra_map == vertebra_value
    axis = anatomy.spine_axes.get(region.vertebra, np.array([0.0, 0.0, 1.0]))
    frame = body_frame(body, anatomy.geometry, axis)
    t_affected = (anatomy.geometry.world_coordinates(np.argwhere(affected)) - frame.centre) @ frame.axis
    reach = (frame.t_high - t_affected.min()) if region.side == "superior" else (t_affected.max() - frame.t_low)
    return band_fraction, float(np.clip(reach / max(frame.height_mm, 1e-6), 0.0, 1.0))


def _largest_components(mask: np.ndarray, keep_fraction: float = 0.1) -> np.ndarray:
    """Drop specks: keep connected parts holding at least ``keep_fraction`` of the largest.

    Labelled within the mask's bounding box: a band is a small part of the volume.
    """
    box = bounding_box(mask)
    if box is None:
        return mask
    labels, n = ndimage.label(mask[box])
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= keep_fraction * sizes.max()) + 1
    kept = np.zeros_like(mask, dtype=bool)
    kept[box] = np.isin(labels, keep)
    return kept
