"""``modic evaluate seg``: segmentation Dice and level identification on a lumbar_seg-layout folder.

For each case the image is segmented by the shipped network, bone and disc
instances are separated and named exactly as in ``modic analyze``, and
predicted instances of the structure the case labels are matched one-to-one
to the labelled instances (Hungarian matching on overlap).

Dice of a case is computed between the union of the labelled instances and
the union of predicted instances that either match a labelled instance or lie
within the labelled cranio-caudal range; predicted instances outside that
range (levels the annotators did not label, e.g. the sacrum of a set labelled
from L5 upwards) are counted but not penalised. Level identification is
correct for a case when every matched instance carries the labelled name.

Each case also lists the level warnings ``modic analyze`` would raise for it
(:func:`modic.levels.anatomy.level_flags`, severity "warning"), and the summary
counts misnamed cases with and without one: the levels stage may be wrong,
but it must not be wrong silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from modic.datasets.lumbar_seg import LumbarSegCase, load_case, read_cases_csv
from modic.io.volume import Volume
from modic.levels.anatomy import level_flags
from modic.levels.instances import instances_from_settings, is_single_slice
from modic.levels.labelling import name_levels
from modic.progress import progress as progress_of
from modic.segmentation.infer import SegmentationModel
from modic.settings import LevelsSettings

MIN_MATCH_IOU = 0.1


@dataclass(frozen=True)
class CaseResult:
    case: str
    structure: str
    dice: float
    n_labelled: int
    n_matched: int
    n_predicted_outside_range: int
    instance_dice: dict[str, float]
    level_names: dict[str, str | None]
    level_correct: bool | None
    level_warnings: tuple[str, ...]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "structure": self.structure,
            "dice": round(self.dice, 4),
            "n_labelled": self.n_labelled,
            "n_matched": self.n_matched,
            "n_predicted_outside_range": self.n_predicted_outside_range,
            "instance_dice": {k: round(v, 4) for k, v in self.instance_dice.items()},
            "predicted_level_names": self.level_names,
            "level_correct": self.level_correct,
            "level_warnings": list(self.level_warnings),
            "seconds": round(self.seconds, 2),
        }


def evaluate_case(
    model: SegmentationModel, root: Path, case: LumbarSegCase, *, levels: LevelsSettings
) -> CaseResult:
    """Segment and score one case (see module docstring)."""
    import time

    started = time.perf_counter()
    image, truth = load_case(root, case)
    return score_probabilities(case, image, truth, model.predict_probabilities(image), levels=levels, started=started)


def score_probabilities(
    case: LumbarSegCase,
    image: Volume,
    truth: np.ndarray,
    probabilities: np.ndarray,
    *,
    levels: LevelsSettings,
    started: float,
) -> CaseResult:
    """Instances, level names and scores of one case from its class probabilities (see module docstring)."""
    instances = instances_from_settings(probabilities, image, levels)
    naming = name_levels(instances.bones, instances.discs, levels)
    flags = level_flags(naming, levels, split_bodies=instances.split_bodies, single_slice=is_single_slice(image))
    warnings = tuple(dict.fromkeys(f.code for f in flags if f.severity == "warning"))
    if case.structure == "disc":
        predicted_map = instances.disc_map
        names = {c.label: name for name, c in naming.discs.items()}
    else:
        predicted_map = instances.bone_map
        names = {c.label: name for name, c in naming.vertebrae.items()}
    return score_instance_maps(case, truth, predicted_map, names, image.world_coordinates, started, warnings=warnings)


def score_instance_maps(
    case: LumbarSegCase,
    truth: np.ndarray,
    predicted: np.ndarray,
    names: Mapping[int, str],
    to_world: Any,
    started: float,
    *,
    warnings: tuple[str, ...] = (),
) -> CaseResult:
    import time

    labelled = [int(v) for v in np.unique(truth) if v > 0]
    candidates = [int(v) for v in np.unique(predicted) if v > 0]
    overlap = np.zeros((len(labelled), len(candidates)))
    for j, p in enumerate(candidates):
        mask = predicted == p
        hits = np.bincount(truth[mask], minlength=max(labelled, default=0) + 1)
        size_p = mask.sum()
        for i, t in enumerate(labelled):
            inter = hits[t]
            if inter:
                overlap[i, j] = inter / (size_p + (truth == t).sum() - inter)
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else ([], [])
    pairs = [(labelled[i], candidates[j]) for i, j in zip(rows, cols) if overlap[i, j] >= MIN_MATCH_IOU]
    matched = {p for _, p in pairs}

    heights = {t: to_world(np.argwhere(truth == t).mean(axis=0))[0][2] for t in labelled}
    low, high = (min(heights.values()), max(heights.values())) if heights else (0.0, 0.0)
    inside, outside = set(matched), 0
    for p in candidates:
        if p in matched:
            continue
        z = to_world(np.argwhere(predicted == p).mean(axis=0))[0][2]
        if low <= z <= high:
            inside.add(p)
        else:
            outside += 1
    predicted_union = np.isin(predicted, sorted(inside))
    dice = _dice(predicted_union, truth > 0)

    expected = case.levels_caudal_first
    instance_dice, level_names, correct = {}, {}, []
    for t, p in pairs:
        label_name = expected[t - 1] if len(expected) >= t else f"label {t}"
        instance_dice[label_name] = _dice(predicted == p, truth == t)
        level_names[label_name] = names.get(p)
        if len(expected) >= t:
            correct.append(names.get(p) == expected[t - 1])
    return CaseResult(
        case=case.case,
        structure=case.structure,
        dice=dice,
        n_labelled=len(labelled),
        n_matched=len(pairs),
        n_predicted_outside_range=outside,
        instance_dice=instance_dice,
        level_names=level_names,
        level_correct=(all(correct) if correct else False) if expected else None,
        level_warnings=warnings,
        seconds=time.perf_counter() - started,
    )


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / total) if total else 1.0


def evaluate_folder(
    root: str | Path, *, model: SegmentationModel, levels: LevelsSettings, progress: bool = True
) -> dict[str, Any]:
    """Metrics over every case of ``root`` (JSON-ready)."""
    root = Path(root)
    cases = read_cases_csv(root)
    results = [
        evaluate_case(model, root, case, levels=levels)
        for case in progress_of(cases, desc="cases", unit="case", enabled=progress)
    ]
    return summarise(results)


def mean_or_none(values: Sequence[float]) -> float | None:
    """Mean rounded to 4 decimals for the metrics JSON; None when there is nothing to average."""
    return round(float(np.mean(values)), 4) if len(values) else None


def summarise(results: Sequence[CaseResult]) -> dict[str, Any]:
    level_cases = [r.level_correct for r in results if r.level_correct is not None]
    instances = [
        name == expected for r in results for expected, name in r.level_names.items() if not expected.startswith("label ")
    ]
    misnamed = [r for r in results if r.level_correct is False]
    named = [r for r in results if r.level_correct is True]
    return {
        "mean_dice_vertebral_body": mean_or_none([r.dice for r in results if r.structure == "vertebral_body"]),
        "mean_dice_disc": mean_or_none([r.dice for r in results if r.structure == "disc"]),
        "level_accuracy": mean_or_none([float(v) for v in level_cases]),
        "instance_level_accuracy": mean_or_none([float(v) for v in instances]),
        "n_cases": len(results),
        "n_cases_with_levels": len(level_cases),
        "n_misnamed_with_warning": sum(bool(r.level_warnings) for r in misnamed),
        "n_misnamed_without_warning": sum(not r.level_warnings for r in misnamed),
        "n_correct_with_warning": sum(bool(r.level_warnings) for r in named),
        "cases": [r.as_dict() for r in results],
    }
