"""``modic evaluate synthetic``: grading accuracy on synthetic studies with planted Modic changes.

Modic types 1 and 3 are almost absent from public radiologist gradings, so
they are verified here: studies are generated (seeded), analysed by the full
pipeline exactly as ``modic analyze`` would (segmentation included), and every
graded endplate is compared with the planted type. An endplate whose level was
named wrongly counts as an error for its planted type. A mixed band counts
under the larger of its types on both sides, the generator's convention
(:class:`modic.synth.lesions.ModicSpec`): a planted 1/2 band is type 2, and so
is a band read as mixed 1/2 whatever its dominant pattern. Other mixtures the
rules may report (1/3, 1/2/3) are not Modic mixed types and count under the
dominant type. Per type: sensitivity and specificity (one type against all
others), and the confusion matrix.

Only endplates of levels whose disc lies in the image are scored: a level is
named and graded by its disc, and the generator's truth lists the clean
endplates of those levels only. It also lists a change planted at a level whose
disc lies outside the field of view (e.g. L5-S1 of a study whose sacrum was
not imaged, where the band is mostly or wholly outside too); such endplates are
reported under ``not_imaged`` and not scored, like the clean ones beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modic.errors import ModicError
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST, level_endplates
from modic.pipeline import analyze_images
from modic.progress import progress as progress_of
from modic.settings import AnalysisSettings
from modic.synth import generate_study, to_study_images
from modic.synth.lesions import MIXED_TYPES

TYPES = (0, 1, 2, 3)
MISSED = -1


def imaged_truth(study: Any, graded_levels: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Planted type of each endplate of ``graded_levels`` whose disc is in the image, and those left out.

    Returns ``(truth, not_imaged)``: ``truth`` maps endplate names to their
    planted type; ``not_imaged`` names the endplates the truth lists at a level
    whose disc has no voxels in the image (see the module docstring).
    """
    graded = {e for level in graded_levels for e in level_endplates(level)}
    imaged_discs = {d["name"] for d in study.truth["discs"]}
    truth: dict[str, int] = {}
    not_imaged: list[str] = []
    for entry in study.truth["endplates"]:
        if entry["name"] not in graded:
            continue
        if entry["disc"] in imaged_discs:
            truth[entry["name"]] = int(entry["modic_type"])
        else:
            not_imaged.append(entry["name"])
    return truth, not_imaged


def endplate_outcomes(study: Any, analysis: Any) -> list[tuple[str, int, int]]:
    """(endplate, planted type, predicted type or MISSED) for every graded endplate in the image.

    An endplate named wrong or whose type is undetermined is MISSED.
    """
    truth, _ = imaged_truth(study, analysis.config.levels.graded)
    predicted = predicted_types(study, analysis)
    return [(name, planted, predicted.get(name, MISSED)) for name, planted in truth.items()]


def predicted_types(study: Any, analysis: Any) -> dict[str, int]:
    """Scored type of each endplate the analysis graded (MISSED where named wrong or undetermined)."""
    instances = study.vertebra_instances.array.astype(int)
    predicted: dict[str, int] = {}
    for level in analysis.levels:
        for grade in level.endplates:
            vertebra = grade.endplate.split()[0]
            value = VERTEBRAE_CAUDAL_FIRST.index(vertebra) + 1
            region = analysis.anatomy.vertebra_map == value
            named_right = region.any() and int(np.bincount(instances[region]).argmax()) == value
            decided = named_right and grade.modic_type is not None  # an undetermined endplate counts as missed
            predicted[grade.endplate] = scored_type(grade.modic_type, grade.mixed) if decided else MISSED
    return predicted


def scored_type(modic_type: int, mixed: str | None) -> int:
    """The type a reading counts as: the larger part of a Modic mixed grade (1/2, 2/3), else its type."""
    return max(int(t) for t in mixed.split("/")) if mixed in MIXED_TYPES else modic_type


def evaluate_synthetic(
    *, n: int, seed: int, synth_config: str, models: Any, config: AnalysisSettings, progress: bool = True
) -> dict[str, Any]:
    """Generate ``n`` studies from ``seed`` and score every graded endplate (see module docstring)."""
    outcomes: list[tuple[int, str, int, int]] = []
    failed: list[dict[str, Any]] = []
    not_imaged: list[dict[str, Any]] = []
    for study_seed in progress_of(range(seed, seed + n), desc="synthetic studies", unit="study", enabled=progress):
        study = generate_study(seed=study_seed, config=synth_config)
        truth, outside = imaged_truth(study, config.levels.graded)
        not_imaged += [{"seed": study_seed, "endplate": name} for name in outside]
        try:
            predicted = predicted_types(study, analyze_images(to_study_images(study), models=models, config=config))
        except ModicError as exc:
            failed.append({"seed": study_seed, "reason": str(exc)})
            predicted = {}
        outcomes += [(study_seed, name, t, predicted.get(name, MISSED)) for name, t in truth.items()]
    return summarise(outcomes, failed, not_imaged)


def summarise(
    outcomes: Sequence[tuple[int, str, int, int]],
    failed: Sequence[Mapping[str, Any]],
    not_imaged: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    truth = np.array([o[2] for o in outcomes])
    predicted = np.array([o[3] for o in outcomes])
    per_type = {}
    for t in TYPES:
        positive = truth == t
        hit = predicted == t
        per_type[str(t)] = {
            "n": int(positive.sum()),
            "sensitivity": _ratio(np.sum(positive & hit), positive.sum()),
            "specificity": _ratio(np.sum(~positive & ~hit), (~positive).sum()),
        }
    confusion = {
        str(t): {("missed" if p == MISSED else str(p)): int(np.sum((truth == t) & (predicted == p))) for p in (*TYPES, MISSED)}
        for t in TYPES
    }
    return {
        "n_endplates": int(truth.size),
        "n_studies_failed": len(failed),
        "accuracy": _ratio(np.sum(truth == predicted), truth.size),
        "per_type": per_type,
        "type1_sensitivity": per_type["1"]["sensitivity"],
        "type1_specificity": per_type["1"]["specificity"],
        "confusion_matrix": confusion,
        "failed": list(failed),
        "not_imaged": list(not_imaged),
        "endplates": [{"seed": s, "endplate": e, "truth": t, "predicted": p} for s, e, t, p in outcomes],
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(float(numerator) / float(denominator), 4) if denominator else None


def format_summary(metrics: Mapping[str, Any]) -> str:
    lines = [f"{metrics['n_endplates']} endplates; studies failed: {metrics['n_studies_failed']}; "
             f"accuracy {metrics['accuracy']}; endplates at levels outside the image, not scored: "
             f"{len(metrics['not_imaged'])}"]
    for t, row in metrics["per_type"].items():
        lines.append(f"  type {t}: n={row['n']:<4} sensitivity {row['sensitivity']}  specificity {row['specificity']}")
    header = "truth\\pred " + " ".join(f"{c:>6}" for c in ("0", "1", "2", "3", "missed"))
    lines.append(header)
    for t, row in metrics["confusion_matrix"].items():
        lines.append(f"{t:>10} " + " ".join(f"{row[c]:>6}" for c in ("0", "1", "2", "3", "missed")))
    return "\n".join(lines)
