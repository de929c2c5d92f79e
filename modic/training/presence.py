"""Train and cross-validate the presence models (``modic train presence``).

Samples are levels L3-S1 measured by the real pipeline (segmentation,
levels, endplate bands, signal features), labelled with the radiologists'
grade (changed = Modic 1, 2 or 3):

- ``t1t2`` and ``t1``: every ``spider_midsag`` patient's mid-sagittal T1/T2
  pair (the T1-only variant reads the T1 signal of the same bands);
- ``t2``: every ``spider_t2space`` patient's 3D T2 volume, optionally with
  the ``spider_midsag`` T2 pictures analysed alone (a candidate chosen by
  cross-validation on the ``spider_t2space`` patients).

Cross-validation splits by patient, repeated; the L2 penalty, the T2 sources
and each fold's decision threshold are chosen on training folds only. The
exported model is refitted on all patients with the chosen settings, its
threshold the one that maximises balanced accuracy on them. Calibration is
measured on the held-out folds (Brier score and a reliability table).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from modic import __version__, atomic
from modic.classification.features import EndplateFeatures
from modic.classification.grading import Decision, Presence, gate_by_presence
from modic.classification.presence import (
    MODEL_FILE,
    PresenceModel,
    feature_names,
    fit_presence,
    level_probabilities,
    noisy_or,
    presence_vector,
)
from modic.classification.type_probability import (
    TypeModel,
    band_row,
    fit_type_model,
    level_fraction_row,
    multiclass_brier,
)
from modic.datasets.spider_t2space import read_patients
from modic.errors import ModicError
from modic.evaluation.spider import binary_metrics, load_patient_images, read_gradings, read_spacings
from modic.io.slice_pair import load_slice_pair
from modic.io.study import load_study
from modic.pipeline import Models, analyze_images
from modic.progress import progress
from modic.settings import AnalysisSettings, load_settings
from modic.training.settings import PresenceTrainSettings, ThresholdRule, load_presence_train_settings

log = logging.getLogger("modic.train")

LEVELS = ("L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True)
class LevelSample:
    """One graded level measured by the pipeline: its endplates' features and decisions."""

    patient: str
    source: str
    level: str
    changed: int
    truth: int
    features: tuple[EndplateFeatures, ...]
    decisions: tuple[Decision, ...]

    def bag(self, variant: str) -> np.ndarray:
        return np.vstack([presence_vector(f, variant) for f in self.features])


def _stripped(features: EndplateFeatures) -> EndplateFeatures:
    return replace(features, pattern_masks={}, patches=None)


def _level_samples(patient: str, source: str, truth: Mapping[str, int], analysis: Any) -> list[LevelSample]:
    samples = []
    for level in analysis.levels:
        if level.level not in truth or not level.endplates:
            continue
        samples.append(
            LevelSample(
                patient=patient,
                source=source,
                level=level.level,
                changed=int(truth[level.level] > 0),
                truth=int(truth[level.level]),
                features=tuple(_stripped(g.features) for g in level.endplates),
                decisions=tuple(Decision(g.modic_type, g.mixed, g.confidence, g.scores) for g in level.endplates),
            )
        )
    return samples


def collect_samples(
    config: PresenceTrainSettings, *, models: Models, analysis_config: AnalysisSettings
) -> dict[str, list[LevelSample]]:
    """Level samples per source: ``midsag`` (T1+T2 pairs), ``midsag_t2`` (T2 alone) and ``t2space``."""
    samples: dict[str, list[LevelSample]] = {"midsag": [], "midsag_t2": [], "t2space": []}
    root = Path(config.data.spider_midsag)
    truth = read_gradings(root)
    spacings = read_spacings(root)
    for patient in progress(sorted(truth, key=_order), desc="spider_midsag patients", unit="patient"):
        for source in ("midsag", "midsag_t2"):
            try:
                if source == "midsag":
                    images = load_patient_images(root, patient, spacings)
                else:
                    t2 = root / "images" / f"{patient}_t2.png"
                    if not t2.exists():
                        continue
                    images = load_slice_pair(t1=None, t2=t2, spacing=spacings.get((patient, "t2")))
                analysis = analyze_images(images, models=models, config=analysis_config)
            except ModicError as exc:
                log.info("%s patient %s not used: %s", source, patient, exc)
                continue
            samples[source] += _level_samples(patient, source, truth[patient], analysis)
    root = Path(config.data.spider_t2space)
    truth = read_gradings(root)
    patients = read_patients(root)
    for patient in progress(patients, desc="spider_t2space patients", unit="patient"):
        if patient not in truth:
            continue
        try:
            analysis = analyze_images(
                load_study(None, t2=root / "images" / f"{patient}.nii.gz"), models=models, config=analysis_config
            )
        except ModicError as exc:
            log.info("t2space patient %s not used: %s", patient, exc)
            continue
        samples["t2space"] += _level_samples(patient, "t2space", truth[patient], analysis)
    return samples


def _order(patient: str) -> tuple[int, str]:
    return (int(patient), patient) if patient.isdigit() else (10**9, patient)


def usable(samples: Sequence[LevelSample], variant: str) -> list[LevelSample]:
    """Samples whose every endplate has the sequences ``variant`` reads."""
    needed = {"t1t2": ("t1", "t2"), "t1": ("t1",), "t2": ("t2",)}[variant]
    return [
        s for s in samples
        if all(f.band_voxels > 0 and all(getattr(f, seq) is not None for seq in needed) for f in s.features)
    ]


def best_threshold(
    labels: np.ndarray, probabilities: np.ndarray, *, one_standard_error: bool = False, min_specificity: float = 0.0
) -> float:
    """The probability cut that maximises balanced accuracy (ties: the middle of the best run).

    With ``one_standard_error`` the highest cut whose balanced accuracy lies
    within one binomial standard error of the best is taken instead (the
    one-standard-error rule): near its optimum balanced accuracy is flat within
    its sampling error, and among such cuts the one that calls fewer normal
    levels changed (the higher specificity) is preferred. That cut is then
    raised, if needed, to the lowest one whose specificity on these samples
    reaches ``min_specificity`` (a floor for the share of normal levels called
    normal; 0: none).
    """
    candidates = np.unique(probabilities)
    positives, negatives = labels == 1, labels == 0
    rows = []
    for cut in candidates:
        called = probabilities >= cut
        sensitivity = called[positives].mean() if positives.any() else 0.0
        specificity = (~called[negatives]).mean() if negatives.any() else 0.0
        rows.append((sensitivity, specificity))
    table = np.asarray(rows, dtype=float)
    scores = table.mean(axis=1)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    chosen = int(best[len(best) // 2])
    if one_standard_error:
        sensitivity, specificity = table[chosen]
        error = 0.5 * np.sqrt(
            sensitivity * (1 - sensitivity) / max(int(positives.sum()), 1)
            + specificity * (1 - specificity) / max(int(negatives.sum()), 1)
        )
        chosen = int(np.flatnonzero(scores >= scores.max() - error).max())
    specific = np.flatnonzero(table[:, 1] >= min_specificity)
    if specific.size and table[chosen, 1] < min_specificity:
        chosen = int(specific.min())
    return float(candidates[chosen])


def fit_variant(
    train: Sequence[LevelSample], *, variant: str, l2: float, one_standard_error: bool = False,
    min_specificity: float = 0.0,
) -> PresenceModel:
    """A variant fitted on ``train`` with its balanced-accuracy threshold on the same samples (:func:`best_threshold`)."""
    bags = [s.bag(variant) for s in train]
    labels = np.asarray([s.changed for s in train])
    model = fit_presence(bags, labels, variant=variant, l2=l2)
    threshold = best_threshold(
        labels, level_probabilities(model, bags), one_standard_error=one_standard_error, min_specificity=min_specificity
    )
    return replace(model, threshold=threshold)


def patient_folds(patients: Sequence[str], *, folds: int, seed: int) -> dict[str, int]:
    order = np.random.default_rng(seed).permutation(sorted(set(patients)))
    return {p: i % folds for i, p in enumerate(order)}


def cross_validate(
    evaluated: Sequence[LevelSample],
    *,
    variant: str,
    l2: float,
    folds: int,
    repeats: int,
    seed: int,
    extra_training: Sequence[LevelSample] = (),
    one_standard_error: bool = False,
    min_specificity: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray, list[list[float]]]]:
    """Per repeat: held-out level probabilities of ``evaluated``, their folds' thresholds and endplate probabilities.

    ``extra_training`` samples join every training fold, except those of the
    fold's held-out patients (the same patient may be in both sets, e.g. a
    ``spider_t2space`` patient's mid-sagittal T2 picture), and are never evaluated.
    """
    results = []
    for repeat in range(repeats):
        fold_of = patient_folds([s.patient for s in evaluated], folds=folds, seed=seed + repeat)
        probabilities = np.full(len(evaluated), np.nan)
        thresholds = np.full(len(evaluated), np.nan)
        endplates: list[list[float]] = [[] for _ in evaluated]
        for fold in range(folds):
            held_out = {s.patient for s in evaluated if fold_of[s.patient] == fold}
            train = [s for s in [*evaluated, *extra_training] if s.patient not in held_out]
            test = [i for i, s in enumerate(evaluated) if fold_of[s.patient] == fold]
            if not test:
                continue
            model = fit_variant(
                train, variant=variant, l2=l2, one_standard_error=one_standard_error, min_specificity=min_specificity
            )
            for i in test:
                endplates[i] = [model.endplate_probability(row) for row in evaluated[i].bag(variant)]
                probabilities[i] = noisy_or(endplates[i])
                thresholds[i] = model.threshold
        results.append((probabilities, thresholds, endplates))
    return results


def presence_scores(labels: np.ndarray, runs: Sequence[tuple[np.ndarray, np.ndarray, Any]]) -> dict[str, Any]:
    """Mean over repeats of AUC, balanced accuracy, sensitivity, specificity, kappa and Brier score."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rows = []
    for probabilities, thresholds, _ in runs:
        called = probabilities >= thresholds
        metrics = binary_metrics(labels.astype(bool), called)
        rows.append([
            roc_auc_score(labels, probabilities), metrics["balanced_accuracy"], metrics["sensitivity"],
            metrics["specificity"], metrics["kappa"], brier_score_loss(labels, probabilities),
        ])
    table = np.asarray(rows, dtype=float)
    names = ("auc", "balanced_accuracy", "sensitivity", "specificity", "kappa", "brier")
    return {
        **{name: round(float(table[:, i].mean()), 4) for i, name in enumerate(names)},
        "balanced_accuracy_sd": round(float(table[:, 1].std()), 4),
        "reliability": reliability(np.concatenate([run[0] for run in runs]), np.tile(labels, len(runs))),
        "n_levels": int(labels.size),
        "n_changed": int(labels.sum()),
    }


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 5) -> list[dict[str, float]]:
    """Mean predicted probability against observed frequency in ``bins`` equal-width bins."""
    table = []
    edges = np.linspace(0, 1, bins + 1)
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) | (high == 1.0))
        if inside.any():
            table.append({
                "bin": f"{low:.1f}-{high:.1f}",
                "n": int(inside.sum()),
                "mean_probability": round(float(probabilities[inside].mean()), 3),
                "observed_frequency": round(float(labels[inside].mean()), 3),
            })
    return table


def gated_grading_scores(
    samples: Sequence[LevelSample],
    runs: Sequence[tuple[np.ndarray, np.ndarray, list[list[float]]]],
    *,
    strong_fraction: float,
    strong_type1_fraction: float,
) -> dict[str, Any]:
    """Midsag grading with the held-out presence gating the rules' types: presence and type-1/3 figures."""
    rows = []
    truth = np.asarray([s.truth for s in samples])
    for probabilities, thresholds, endplates in runs:
        predicted = []
        for sample, p, cut, endplate_p in zip(samples, probabilities, thresholds, endplates):
            reading = Presence(tuple(endplate_p), float(p), float(cut))
            decisions = gate_by_presence(
                sample.decisions, sample.features, reading,
                strong_fraction=strong_fraction, strong_type1_fraction=strong_type1_fraction,
            )
            types = [d.modic_type for d in decisions if d.modic_type is not None]
            predicted.append(next((t for t in (1, 2, 3) if t in types), 0))
        predicted_arr = np.asarray(predicted)
        metrics = binary_metrics(truth > 0, predicted_arr > 0)
        zero = truth == 0
        rows.append([
            metrics["balanced_accuracy"], metrics["sensitivity"], metrics["specificity"], metrics["kappa"],
            float(np.isin(predicted_arr[zero], (1, 3)).mean()),
        ])
    table = np.asarray(rows, dtype=float)
    names = ("presence_balanced_accuracy", "presence_sensitivity", "presence_specificity", "presence_kappa",
             "type_1_or_3_at_unchanged_levels")
    return {name: round(float(table[:, i].mean()), 4) for i, name in enumerate(names)}


def type_row(sample: LevelSample) -> np.ndarray | None:
    """A level's pattern fractions for the type model (None without an endplate read on T1 and T2)."""
    return level_fraction_row([band_row(f) for f in sample.features])


def fit_types(samples: Sequence[LevelSample], *, l2: float) -> TypeModel:
    """The type model fitted on the changed levels of ``samples`` that have a type row."""
    pairs = [(row, s.truth) for s in samples if s.changed and (row := type_row(s)) is not None]
    rows = np.vstack([row for row, _ in pairs]) if pairs else np.empty((0, 3))
    return fit_type_model(rows, [truth for _, truth in pairs], l2=l2)


def type_calibration(
    samples: Sequence[LevelSample],
    runs: Sequence[tuple[np.ndarray, np.ndarray, Any]],
    *,
    l2: float,
    folds: int,
    seed: int,
) -> dict[str, Any]:
    """Held-out calibration of the level type probabilities (types 0-3), per repeat of ``runs``' folds.

    The presence probabilities are ``runs``' held-out ones; the type model is
    refitted on each training fold. Reported: the multi-class Brier score of
    the model, of its prior alone (weight 0) and of "every change is type 2",
    and per type the mean predicted probability against the observed frequency.
    """
    rows = [type_row(s) for s in samples]
    keep = [i for i, row in enumerate(rows) if row is not None]
    truth = np.asarray([samples[i].truth for i in keep])
    scores: dict[str, list[float]] = {"model": [], "prior_only": [], "type_2_always": []}
    predicted_all = []
    for repeat, (probabilities, _, _) in enumerate(runs):
        fold_of = patient_folds([s.patient for s in samples], folds=folds, seed=seed + repeat)
        tables = {name: np.zeros((len(keep), 4)) for name in scores}
        for fold in range(folds):
            train = [s for s in samples if fold_of[s.patient] != fold]
            model = fit_types(train, l2=l2)
            prior = fit_types(train, l2=1e9)
            for j, i in enumerate(keep):
                if fold_of[samples[i].patient] != fold:
                    continue
                p = float(probabilities[i])
                for name, fitted in (("model", model), ("prior_only", prior)):
                    by_type = fitted.probabilities(p, rows[i])
                    tables[name][j] = [by_type[k] for k in range(4)]
                tables["type_2_always"][j] = [1.0 - p, 0.0, p, 0.0]
        for name, table in tables.items():
            scores[name].append(multiclass_brier(table, truth))
        predicted_all.append(tables["model"])
    mean_predicted = np.mean(np.vstack(predicted_all), axis=0)
    return {
        "brier": {name: round(float(np.mean(values)), 4) for name, values in scores.items()},
        "per_type": {
            str(k): {"mean_probability": round(float(mean_predicted[k]), 4),
                     "observed_frequency": round(float(np.mean(truth == k)), 4)}
            for k in range(4)
        },
        "n_levels": len(keep),
    }


def train_presence(config_path: str | Path, *, output: str | Path, device: str = "auto") -> dict[str, Any]:
    """Collect samples, cross-validate the candidates, refit the chosen ones and write the bundle to ``output``.

    Endplates are measured with the shipped analysis settings, the ``rules``
    classifier and no presence model (the one being trained replaces it).
    """
    config = load_presence_train_settings(config_path)
    measuring = load_settings({"classification": {"method": "rules", "presence_bundle": None}})
    models = Models.load(measuring, device=device)
    samples = collect_samples(config, models=models, analysis_config=measuring)
    threshold = {"one_standard_error": config.threshold_rule is ThresholdRule.ONE_STANDARD_ERROR,
                 "min_specificity": config.min_specificity}
    cv = {"folds": config.cross_validation.folds, "repeats": config.cross_validation.repeats, "seed": config.seed,
          **threshold}
    report: dict[str, Any] = {"variants": {}, "candidates_scored": 0}
    exported: dict[str, Any] = {}
    types: TypeModel | None = None

    for variant, source in (("t1t2", "midsag"), ("t1", "midsag")):
        data = usable(samples[source], variant)
        labels = np.asarray([s.changed for s in data])
        scored = {l2: presence_scores(labels, cross_validate(data, variant=variant, l2=l2, **cv)) for l2 in config.l2}
        report["candidates_scored"] += len(scored)
        l2 = max(scored, key=lambda k: (scored[k]["balanced_accuracy"], scored[k]["auc"]))
        entry: dict[str, Any] = {"source": source, "l2": l2, "cross_validation": scored[l2],
                                 "candidates": {str(k): v["balanced_accuracy"] for k, v in scored.items()}}
        if variant == "t1t2":
            runs = cross_validate(data, variant=variant, l2=l2, **cv)
            entry["gated_rules_cross_validation"] = gated_grading_scores(
                data, runs, strong_fraction=config.strong_pattern_fraction,
                strong_type1_fraction=config.strong_type1_fraction,
            )
            entry["type_cross_validation"] = type_calibration(
                data, runs, l2=config.type_l2, folds=cv["folds"], seed=cv["seed"]
            )
            types = fit_types(data, l2=config.type_l2)
        report["variants"][variant] = entry
        exported[variant] = fit_variant(data, variant=variant, l2=l2, **threshold)

    evaluated = usable(samples["t2space"], "t2")
    extra = usable(samples["midsag_t2"], "t2")
    labels = np.asarray([s.changed for s in evaluated])
    scored_t2 = {}
    for source in config.t2_sources:
        for l2 in config.l2:
            runs = cross_validate(evaluated, variant="t2", l2=l2, extra_training=extra if "midsag" in source else (), **cv)
            scored_t2[(source, l2)] = presence_scores(labels, runs)
    report["candidates_scored"] += len(scored_t2)
    source, l2 = max(scored_t2, key=lambda k: (scored_t2[k]["balanced_accuracy"], scored_t2[k]["auc"]))
    report["variants"]["t2"] = {
        "source": source, "l2": l2, "cross_validation": scored_t2[(source, l2)],
        "candidates": {f"{s} l2={v}": r["balanced_accuracy"] for (s, v), r in scored_t2.items()},
    }
    exported["t2"] = fit_variant(evaluated + (extra if "midsag" in source else []), variant="t2", l2=l2, **threshold)

    report["samples"] = {k: len(v) for k, v in samples.items()}
    write_presence_bundle(Path(output), exported, types=types, version=config.version, metadata={
        "name": config.name, "version": config.version, "modic_version": __version__, "seed": config.seed,
        "threshold_rule": config.threshold_rule.value, "min_specificity": config.min_specificity,
        "training": report, "features": {v: list(feature_names(v)) for v in exported},
        "data": ["spider_midsag", "spider_t2space"],
    })
    return report


def write_presence_bundle(
    bundle: Path,
    variants: Mapping[str, PresenceModel],
    *,
    types: TypeModel | None,
    version: str,
    metadata: Mapping[str, Any],
) -> None:
    """Write ``configs/presence.json`` (the models) and ``configs/metadata.json`` (how they measured)."""
    configs = bundle / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    model: dict[str, Any] = {"version": version, "variants": {name: m.to_dict() for name, m in variants.items()}}
    if types is not None:
        model["type_model"] = types.to_dict()
    atomic.write_text(configs / MODEL_FILE, json.dumps(model, indent=2) + "\n")
    atomic.write_text(configs / "metadata.json", json.dumps(metadata, indent=2, default=float) + "\n")
