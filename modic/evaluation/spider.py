"""``modic evaluate spider``: Modic grading against radiologists on a SPIDER-layout folder.

Two layouts are read:

- ``spider_midsag`` (``images/<patient>_t1.png``/``_t2.png``, ``series.csv``):
  the single-slice path (the same network, level labelling and classifier as
  ``modic analyze``) runs on the T1/T2 pair with the pixel spacing from
  ``series.csv``; the type of each level is compared with the grading.
- ``spider_t2space`` (``images/<patient>.nii.gz``, ``cases.csv`` keyed by
  ``patient``): the 3D path runs on the T2 volume alone; the type needs T1,
  so each level's presence (either endplate changed, as the presence model
  calls it) is compared, and type metrics are None.

Levels L3-L4, L4-L5, L5-S1 are compared with ``gradings.csv`` (``IVD label``
1 = L5-S1, 2 = L4-L5, 3 = L3-L4). Patients or levels the pipeline cannot
analyse count as errors (a failed level is scored as the wrong presence
answer), never as skipped.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modic.datasets.spider_t2space import lists_patients
from modic.errors import InputError, ModicError
from modic.io.slice_pair import load_slice_pair
from modic.io.study import StudyImages, load_study
from modic.levels.anatomy import LEVEL_WARNING_CODES
from modic.pipeline import analyze_images
from modic.progress import progress as progress_of
from modic.results import StudyAnalysis
from modic.settings import AnalysisSettings

IVD_LABEL_TO_LEVEL = {1: "L5-S1", 2: "L4-L5", 3: "L3-L4"}
LEVELS = ("L3-L4", "L4-L5", "L5-S1")
FAILED = -1
TYPES = (0, 1, 2, 3)


@dataclass(frozen=True)
class PatientGrading:
    """One patient's truth and prediction per level.

    ``predicted`` holds determined types; ``changed`` the presence verdict of
    every level that has one (from the type, or from the presence model when
    the type is undetermined); ``probability`` the presence model's level
    probability (None without one).
    """

    patient: str
    truth: dict[str, int]
    predicted: dict[str, int]
    confidence: dict[str, float]
    error: str | None = None
    warnings: tuple[str, ...] = ()
    changed: dict[str, bool] = field(default_factory=dict)
    probability: dict[str, float | None] = field(default_factory=dict)


def read_gradings(root: Path, *, column: str = "Modic") -> dict[str, dict[str, int]]:
    """Radiologists' Modic type per patient and level (L3-S1 only), or the grade in another ``column``.

    SPIDER's other graded columns include ``Pfirrman grade`` (so spelt there).
    """
    path = root / "gradings.csv"
    if not path.is_file():
        raise InputError(f"'{path}' not found: a SPIDER-layout folder needs images/, gradings.csv and series.csv")
    truth: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                label = int(row["IVD label"])
                grade = int(row[column])
            except (KeyError, ValueError):
                raise InputError(f"{path}: row {row} lacks an integer 'IVD label' and '{column}'") from None
            if label in IVD_LABEL_TO_LEVEL:
                truth[str(row["Patient"]).strip()][IVD_LABEL_TO_LEVEL[label]] = grade
    return dict(truth)


def read_spacings(root: Path) -> dict[tuple[str, str], tuple[float, float]]:
    """Pixel spacing (row, column mm) per (patient, sequence) from ``series.csv``."""
    path = root / "series.csv"
    if not path.is_file():
        raise InputError(f"'{path}' not found: a SPIDER-layout folder needs images/, gradings.csv and series.csv")
    spacings = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = _numbers(row.get("PixelSpacing", ""))
            if len(values) == 2 and all(np.isfinite(values)) and min(values) > 0:
                spacings[(str(row["patient"]).strip(), row["sequence"].strip().lower())] = (values[0], values[1])
    return spacings


def _numbers(text: str) -> list[float]:
    """Numbers in a spacing field written as ``[0.5, 0.5]``, ``[.5, .5]`` or ``0.5\\0.5``."""
    parts = text.replace("[", " ").replace("]", " ").replace(",", " ").replace("\\", " ").split()
    try:
        return [float(p) for p in parts]
    except ValueError:
        return []


def load_patient_images(
    root: Path, patient: str, spacings: Mapping[tuple[str, str], tuple[float, float]]
) -> StudyImages:
    """The T1/T2 slice pair of ``patient`` (either picture may be absent), with its ``series.csv`` spacing."""
    if (patient, "t1") not in spacings and (patient, "t2") not in spacings:
        raise InputError(f"series.csv has no PixelSpacing for patient {patient}")
    t1 = root / "images" / f"{patient}_t1.png"
    t2 = root / "images" / f"{patient}_t2.png"
    return load_slice_pair(
        t1=t1 if t1.exists() else None,
        t2=t2 if t2.exists() else None,
        spacing=spacings.get((patient, "t1")),
        t2_spacing=spacings.get((patient, "t2")),
    )


def analyze_patient(
    root: Path,
    patient: str,
    truth: Mapping[str, int],
    spacings: Mapping[tuple[str, str], tuple[float, float]],
    *,
    models: Any,
    config: AnalysisSettings,
) -> PatientGrading:
    try:
        analysis = analyze_images(load_patient_images(root, patient, spacings), models=models, config=config)
    except ModicError as exc:
        return PatientGrading(patient, dict(truth), {}, {}, error=str(exc))
    return patient_grading(patient, truth, analysis)


def analyze_t2space_patient(
    root: Path, patient: str, truth: Mapping[str, int], *, models: Any, config: AnalysisSettings
) -> PatientGrading:
    """The 3D path on one spider_t2space patient's T2 volume (``images/<patient>.nii.gz``) alone."""
    path = root / "images" / f"{patient}.nii.gz"
    try:
        if not path.is_file():
            raise InputError(f"'{path}' not found")
        analysis = analyze_images(load_study(None, t2=path), models=models, config=config)
    except ModicError as exc:
        return PatientGrading(patient, dict(truth), {}, {}, error=str(exc))
    return patient_grading(patient, truth, analysis)


def patient_grading(patient: str, truth: Mapping[str, int], analysis: StudyAnalysis) -> PatientGrading:
    """Compare one analysis with the grading; a level with neither a type nor a presence verdict is not graded."""
    determined = [g for g in analysis.levels if g.modic_type is not None]
    predicted = {g.level: g.modic_type for g in determined}
    confidence = {g.level: g.confidence for g in determined}
    changed = {g.level: bool(g.modic_type) for g in determined}
    changed.update({g.level: g.changed for g in analysis.levels if g.changed is not None and g.modic_type is None})
    probability = {g.level: g.presence_probability for g in analysis.levels}
    missing = [level for level in truth if level not in changed]
    error = f"levels not graded: {', '.join(missing)}" if missing else None
    warnings = tuple(dict.fromkeys(f.code for f in analysis.warnings if f.severity == "warning"))
    return PatientGrading(
        patient, dict(truth), predicted, confidence, error=error, warnings=warnings, changed=changed,
        probability={level: probability.get(level) for level in truth},
    )


def evaluate_spider(root: str | Path, *, models: Any, config: AnalysisSettings, progress: bool = True) -> dict[str, Any]:
    """Grade every patient of a spider_midsag or spider_t2space folder and score it (module docstring)."""
    root = Path(root)
    truth = read_gradings(root)
    t2space = lists_patients(root)
    spacings = {} if t2space else read_spacings(root)
    results = []
    for patient, levels in progress_of(sorted(truth.items(), key=lambda kv: _sort_key(kv[0])), desc="patients",
                                       unit="patient", enabled=progress):
        if t2space:
            results.append(analyze_t2space_patient(root, patient, levels, models=models, config=config))
        else:
            results.append(analyze_patient(root, patient, levels, spacings, models=models, config=config))
    metrics = grading_metrics(results, types=not t2space)
    return {"layout": "spider_t2space" if t2space else "spider_midsag", **metrics}


def _sort_key(patient: str) -> tuple[int, str]:
    return (int(patient), patient) if patient.isdigit() else (10**9, patient)


def grading_metrics(results: Sequence[PatientGrading], *, types: bool = True) -> dict[str, Any]:
    """Confusion matrix, presence and patient-level metrics (see module docstring).

    ``types`` False (T2 only): presence is all that is predicted; the
    confusion matrix has columns ``0``, ``changed`` and ``failed``, and type
    metrics are None. The patient is positive with any changed level
    (T2 cannot tell type 3 from 1 or 2).
    """
    truth_levels, predicted_levels, changed_levels = [], [], []
    for result in results:
        for level, true_type in result.truth.items():
            truth_levels.append(true_type)
            predicted_levels.append(result.predicted.get(level, FAILED))
            changed_levels.append(_presence(result, level))
    truth_arr = np.asarray(truth_levels)
    pred_arr = np.asarray(predicted_levels)
    changed_arr = np.asarray(changed_levels)

    if types:
        confusion = {
            str(t): {str(p) if p != FAILED else "failed": int(np.sum((truth_arr == t) & (pred_arr == p))) for p in (*TYPES, FAILED)}
            for t in TYPES
        }
    else:
        columns = {"0": 0, "changed": 1, "failed": FAILED}
        confusion = {str(t): {c: int(np.sum((truth_arr == t) & (changed_arr == v))) for c, v in columns.items()} for t in TYPES}
    true_presence = truth_arr > 0
    predicted_presence = np.where(changed_arr == FAILED, ~true_presence, changed_arr == 1)
    presence = binary_metrics(true_presence, predicted_presence)

    patient_truth, patient_pred = [], []
    positive = (1, 2) if types else (1, 2, 3)
    for result in results:
        patient_truth.append(any(v in positive for v in result.truth.values()))
        if result.error and not result.changed and not result.predicted:
            patient_pred.append(not patient_truth[-1])
        elif types:
            patient_pred.append(any(v in (1, 2) for v in result.predicted.values()))
        else:
            patient_pred.append(any(result.changed.values()))
    patient = binary_metrics(np.asarray(patient_truth), np.asarray(patient_pred))

    recall: dict[str, float | None] | None = None
    if types:
        recall = {}
        for t in TYPES:
            n = int(np.sum(truth_arr == t))
            recall[str(t)] = round(float(np.sum((truth_arr == t) & (pred_arr == t)) / n), 4) if n else None
    unchanged = truth_arr == 0
    rare_at_unchanged = (
        round(float(np.isin(pred_arr[unchanged], (1, 3)).mean()), 4) if types and unchanged.any() else None
    )
    return {
        "n_patients": len(results),
        "n_levels": int(truth_arr.size),
        "presence_balanced_accuracy": presence["balanced_accuracy"],
        "presence_sensitivity": presence["sensitivity"],
        "presence_specificity": presence["specificity"],
        "presence_kappa": presence["kappa"],
        "type_kappa": round(cohen_kappa(truth_arr, pred_arr), 4) if types else None,
        "per_type_recall": recall,
        "type_1_or_3_at_unchanged_levels": rare_at_unchanged,
        "confusion_matrix": confusion,
        "patient_sensitivity": patient["sensitivity"],
        "patient_specificity": patient["specificity"],
        "patient_balanced_accuracy": patient["balanced_accuracy"],
        "failed": [{"patient": r.patient, "reason": r.error} for r in results if r.error],
        "n_patients_with_warning": sum(bool(r.warnings) for r in results),
        "n_patients_with_level_warning": sum(bool(LEVEL_WARNING_CODES.intersection(r.warnings)) for r in results),
        "patients": [
            {"patient": r.patient, "truth": r.truth, "predicted": r.predicted, "changed": r.changed,
             "probability": r.probability, "confidence": r.confidence, "warnings": list(r.warnings), "error": r.error}
            for r in results
        ],
    }


def _presence(result: PatientGrading, level: str) -> int:
    """1 changed, 0 not, FAILED: the presence verdict if given, else from the determined type."""
    if level in result.changed:
        return int(result.changed[level])
    if level in result.predicted:
        return int(result.predicted[level] > 0)
    return FAILED


def binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    truth = truth.astype(bool)
    predicted = predicted.astype(bool)
    tp = int(np.sum(truth & predicted))
    tn = int(np.sum(~truth & ~predicted))
    sensitivity = tp / truth.sum() if truth.sum() else None
    specificity = tn / (~truth).sum() if (~truth).sum() else None
    balanced = (sensitivity + specificity) / 2 if sensitivity is not None and specificity is not None else None
    return {
        "sensitivity": _round(sensitivity),
        "specificity": _round(specificity),
        "balanced_accuracy": _round(balanced),
        "kappa": round(cohen_kappa(truth.astype(int), predicted.astype(int)), 4),
    }


def cohen_kappa(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Cohen's kappa for two label arrays (any integer labels)."""
    if truth.size == 0:
        return float("nan")
    labels = np.union1d(truth, predicted)
    index = {v: i for i, v in enumerate(labels)}
    table = np.zeros((labels.size, labels.size))
    for t, p in zip(truth, predicted):
        table[index[t], index[p]] += 1
    n = table.sum()
    observed = np.trace(table) / n
    expected = float((table.sum(axis=0) * table.sum(axis=1)).sum() / n**2)
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def format_summary(metrics: Mapping[str, Any]) -> str:
    """Human-readable summary printed by the CLI: one line per patient, then the confusion matrix and metrics."""
    confusion = metrics["confusion_matrix"]
    columns = list(next(iter(confusion.values())))

    def fmt(value: Any) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    rows = [_patient_line(patient) for patient in metrics["patients"]]
    rows.append("truth\\pred " + " ".join(f"{c:>7}" for c in columns))
    rows += [f"{t:>10} " + " ".join(f"{confusion[t][c]:>7}" for c in columns) for t in ("0", "1", "2", "3")]
    rows += [
        f"levels {metrics['n_levels']} of {metrics['n_patients']} patients; failed patients: {len(metrics['failed'])}; "
        f"patients with a warning: {metrics['n_patients_with_warning']} "
        f"(about level names or a missing structure: {metrics['n_patients_with_level_warning']})",
        f"presence: balanced accuracy {fmt(metrics['presence_balanced_accuracy'])}, sensitivity "
        f"{fmt(metrics['presence_sensitivity'])}, specificity {fmt(metrics['presence_specificity'])}, "
        f"kappa {fmt(metrics['presence_kappa'])}",
    ]
    if metrics["per_type_recall"] is not None:
        rows.append(
            f"type kappa {fmt(metrics['type_kappa'])}; recall per type: "
            + ", ".join(f"{k}: {fmt(v)}" for k, v in metrics["per_type_recall"].items())
            + f"; type 1 or 3 at levels graded 0: {fmt(metrics['type_1_or_3_at_unchanged_levels'])}"
        )
    else:
        rows.append("types: not determined (T2 only)")
    rows.append(
        f"patient (any change at L3-S1{'' if metrics['per_type_recall'] is None else ', Modic 1 or 2'}): "
        f"sensitivity {fmt(metrics['patient_sensitivity'])}, specificity {fmt(metrics['patient_specificity'])}"
    )
    return "\n".join(rows)


def _patient_line(patient: Mapping[str, Any]) -> str:
    """``patient 7: L3-L4 truth 0 pred 0 (p 0.21); ... [warnings]`` or the failure."""
    parts = []
    for level in LEVELS:
        if level not in patient["truth"]:
            continue
        predicted = patient["predicted"].get(level)
        changed = patient["changed"].get(level)
        shown = str(predicted) if predicted is not None else ("changed" if changed else "0" if changed is not None else "-")
        probability = patient["probability"].get(level)
        p_text = f" (p {probability:.2f})" if probability is not None else ""
        parts.append(f"{level} truth {patient['truth'][level]} pred {shown}{p_text}")
    line = f"patient {patient['patient']}: " + "; ".join(parts)
    if patient["warnings"]:
        line += f" [warnings: {', '.join(patient['warnings'])}]"
    if patient["error"]:
        line += f" [failed: {patient['error']}]"
    return line
