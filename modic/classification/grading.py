"""Grade each endplate and level: the classification stage's entry point."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
from scipy import ndimage

from modic.classification.features import EndplateFeatures, endplate_features
from modic.classification.patches import PatchGrid, endplate_patches
from modic.classification.reference import reference_marrow
from modic.levels import SpineAnatomy
from modic.levels.endplates import body_frame
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST, level_endplates
from modic.results import Decision, EndplateGrade, LevelGrade
from modic.settings import ClassificationSettings


class EndplateClassifier(Protocol):
    name: str

    def decide(self, features: EndplateFeatures) -> Decision: ...


def grade_study(
    anatomy: SpineAnatomy,
    *,
    t1: np.ndarray | None,
    t2: np.ndarray | None,
    classifier: EndplateClassifier,
    config: ClassificationSettings,
) -> list[LevelGrade]:
    """Grade every graded level of ``anatomy`` (T1/T2 arrays on its grid; either may be None)."""
    significance = [int(v) for v in config.level_significance]
    levels = []
    # Both endplates of a vertebra share its reference marrow: choose it once.
    references: dict[int, tuple[np.ndarray, str]] = {}
    for level in _graded_levels(anatomy):
        grades = []
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
            decision = evidence_limited(classifier.decide(features), features)
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
                )
            )
        if grades:
            levels.append(_level_grade(level, grades, significance))
    return levels


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
    """Drop specks: keep connected parts holding at least ``keep_fraction`` of the largest."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= keep_fraction * sizes.max()) + 1
    return np.isin(labels, keep)
