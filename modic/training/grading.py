"""Train and cross-validate the learned Modic grading model (``modic train grade``).

Samples are endplates measured by the real pipeline (segmentation, levels,
endplate regions, features): every SPIDER patient's single-slice pair, whose
label is the radiologists' grade of the level (a level's grade is given to
both its endplates), and synthetic studies whose endplates carry their
planted type. Cross-validation splits SPIDER by patient; synthetic samples
are only ever training data. The rules classifier is scored on the same
levels for comparison, and the candidate that measures best becomes the
exported model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modic import __version__, atomic
from modic.bundles import write_bundle
from modic.classification.features import FEATURE_NAMES
from modic.classification.learned import MODEL_FILE
from modic.classification.patches import PatchGrid, endplate_patches
from modic.classification.reference import reference_marrow
from modic.errors import ConfigError, ModicError
from modic.evaluation.spider import (
    FAILED,
    PatientGrading,
    grading_metrics,
    read_gradings,
    read_spacings,
)
from modic.io.slice_pair import load_slice_pair
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST
from modic.pipeline import Models, analyze_images
from modic.progress import progress
from modic.settings import AnalysisSettings, VoxelSettings, load_settings, to_dict
from modic.synth import generate_study, to_study_images
from modic.training.patch_grading import cross_validate_patches, fit_network, level_bags
from modic.training.settings import (
    GradientBoostingSettings,
    LogisticSettings,
    PatchModelSettings,
    load_grade_train_settings,
)

log = logging.getLogger("modic.train")


@dataclass(frozen=True)
class EndplateSample:
    """One endplate measured by the pipeline, with its label."""

    group: str
    source: str
    level: str
    endplate: str
    features: list[float]
    target: int
    rule_type: int


def spider_samples(
    root: str | Path, *, models: Any, config: AnalysisSettings
) -> tuple[list[EndplateSample], np.ndarray, dict[str, dict[str, int]], dict[str, str]]:
    """Endplate samples of every SPIDER patient, their patches, the level truth and the failed patients (with reasons)."""
    root = Path(root)
    truth = read_gradings(root)
    spacings = read_spacings(root)
    samples: list[EndplateSample] = []
    patches: list[np.ndarray] = []
    failed: dict[str, str] = {}
    grid = PatchGrid.from_settings(config.classification.patches)
    for patient in progress(sorted(truth, key=_order), desc="SPIDER patients", unit="patient"):
        try:
            images = load_slice_pair(
                t1=root / "images" / f"{patient}_t1.png",
                t2=root / "images" / f"{patient}_t2.png",
                spacing=spacings.get((patient, "t1")),
                t2_spacing=spacings.get((patient, "t2")),
            )
            analysis = analyze_images(images, models=models, config=config)
        except ModicError as exc:
            failed[patient] = str(exc)
            continue
        for level in analysis.levels:
            if level.level not in truth[patient]:
                continue
            for grade in level.endplates:
                patches.append(_central_patch(analysis, grade.endplate, grid, voxels=config.classification.voxels))
                samples.append(
                    EndplateSample(
                        group=f"spider:{patient}",
                        source="spider",
                        level=level.level,
                        endplate=grade.endplate,
                        features=[float(v) for v in grade.features.vector()],
                        target=truth[patient][level.level],
                        rule_type=grade.modic_type,
                    )
                )
    return samples, _stack(patches, grid), truth, failed


def _central_patch(analysis: Any, endplate: str, grid: PatchGrid, *, voxels: VoxelSettings) -> np.ndarray:
    """The patch of the slice through the middle of the endplate's band (zeros when it is empty).

    Normalised by the same reference marrow as at inference (``voxels``: the settings' ``classification.voxels``).
    """
    region = analysis.anatomy.endplate(endplate)
    images = analysis.images
    t1 = images.t1.array if images.t1 is not None else None
    t2 = images.t2.array if images.t2 is not None else None
    stack = None
    if region is not None:
        reference, _ = reference_marrow(
            analysis.anatomy, region, t1=t1, t2=t2, max_half_difference=voxels.reference_half_difference
        )
        stack = endplate_patches(analysis.anatomy, region, t1=t1, t2=t2, grid=grid, reference=reference)
    if stack is None or not len(stack):
        return np.zeros((3, grid.rows, grid.cols), dtype=np.float32)
    return stack[len(stack) // 2]


def _stack(patches: Sequence[np.ndarray], grid: PatchGrid) -> np.ndarray:
    return np.stack(patches) if patches else np.zeros((0, 3, grid.rows, grid.cols), dtype=np.float32)


def synthetic_samples(
    *, seeds: Sequence[int], synth_config: str, models: Any, config: AnalysisSettings
) -> list[EndplateSample]:
    """Endplate samples of synthetic studies whose level naming matches the truth."""
    samples: list[EndplateSample] = []
    for seed in progress(list(seeds), desc="synthetic studies", unit="study"):
        study = generate_study(seed=seed, config=synth_config)
        try:
            analysis = analyze_images(to_study_images(study), models=models, config=config)
        except ModicError:
            continue
        truth = {e["name"]: int(e["modic_type"]) for e in study.truth["endplates"]}
        instances = study.vertebra_instances.array
        for level in analysis.levels:
            for grade in level.endplates:
                vertebra = grade.endplate.split()[0]
                region = analysis.anatomy.vertebra_map == VERTEBRAE_CAUDAL_FIRST.index(vertebra) + 1
                found = np.bincount(instances[region].astype(int)).argmax() if region.any() else 0
                if found != VERTEBRAE_CAUDAL_FIRST.index(vertebra) + 1 or grade.endplate not in truth:
                    continue
                samples.append(
                    EndplateSample(
                        group=f"synthetic:{seed}",
                        source="synthetic",
                        level=level.level,
                        endplate=grade.endplate,
                        features=[float(v) for v in grade.features.vector()],
                        target=truth[grade.endplate],
                        rule_type=grade.modic_type,
                    )
                )
    return samples


def build_candidate(kind: str, params: LogisticSettings | GradientBoostingSettings, *, seed: int) -> Any:
    """An unfitted scikit-learn classifier for a candidate in the config."""
    if kind == "logistic" and isinstance(params, LogisticSettings):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=float(params.C), max_iter=2000, class_weight="balanced"),
        )
    if kind == "gradient_boosting" and isinstance(params, GradientBoostingSettings):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_depth=params.max_depth,
            learning_rate=float(params.learning_rate),
            max_iter=params.max_iter,
            min_samples_leaf=params.min_samples_leaf,
            class_weight="balanced",
            random_state=seed,
        )
    raise ConfigError(f"unknown grading model candidate {kind!r}; accepted: logistic, gradient_boosting")


def level_results(
    samples: Sequence[EndplateSample], predicted: Sequence[int], truth: Mapping[str, Mapping[str, int]],
    significance: Sequence[int], failed: Mapping[str, str],
) -> list[PatientGrading]:
    """Per-patient level predictions (most significant endplate type) for :func:`grading_metrics`."""
    rank = {t: i for i, t in enumerate(significance)}
    per_patient: dict[str, dict[str, int]] = {}
    for sample, value in zip(samples, predicted):
        patient = sample.group.split(":", 1)[1]
        levels = per_patient.setdefault(patient, {})
        current = levels.get(sample.level)
        if current is None or rank.get(int(value), 99) < rank.get(current, 99):
            levels[sample.level] = int(value)
    results = []
    for patient, levels in truth.items():
        predicted_levels = per_patient.get(patient, {})
        missing = [lv for lv in levels if lv not in predicted_levels]
        error = failed.get(patient) or (f"levels not graded: {', '.join(missing)}" if missing else None)
        results.append(PatientGrading(patient, dict(levels), predicted_levels, {}, error=error))
    return results


def cross_validate(
    kind: str,
    params: LogisticSettings | GradientBoostingSettings,
    spider: Sequence[EndplateSample],
    synthetic: Sequence[EndplateSample],
    truth: Mapping[str, Mapping[str, int]],
    failed: Mapping[str, str],
    *,
    folds: int,
    repeats: int,
    seed: int,
    significance: Sequence[int],
) -> dict[str, Any]:
    """Patient-level cross-validated level metrics of one candidate (mean and SD over repeats).

    Each repeat shuffles the patients into ``folds`` groups; synthetic samples
    are added to every training fold.
    """
    groups = np.array([s.group for s in spider])
    x_spider = np.array([s.features for s in spider])
    y_spider = np.array([s.target for s in spider])
    x_synth = np.array([s.features for s in synthetic]).reshape(-1, len(FEATURE_NAMES))
    y_synth = np.array([s.target for s in synthetic], dtype=int)
    runs = []
    for repeat in range(repeats):
        unique = np.unique(groups)
        shuffled = np.random.default_rng([seed, repeat]).permutation(unique)
        fold_of = {g: i % folds for i, g in enumerate(shuffled)}
        predicted = np.full(len(spider), FAILED)
        for fold in range(folds):
            test = np.array([fold_of[g] == fold for g in groups])
            model = build_candidate(kind, params, seed=seed + repeat)
            model.fit(np.vstack([x_spider[~test], x_synth]), np.concatenate([y_spider[~test], y_synth]))
            predicted[test] = model.predict(x_spider[test])
        runs.append(grading_metrics(level_results(spider, predicted, truth, significance, failed)))
    return summarise_runs(runs)


def summarise_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = ("presence_balanced_accuracy", "presence_kappa", "presence_sensitivity", "presence_specificity",
            "type_kappa", "patient_sensitivity", "patient_specificity")
    summary: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r[key] is not None]
        summary[key] = round(float(np.mean(values)), 4) if values else None
        summary[f"{key}_sd"] = round(float(np.std(values)), 4) if values else None
    summary["n_levels"] = runs[0]["n_levels"] if runs else 0
    summary["confusion_matrix_first_repeat"] = runs[0]["confusion_matrix"] if runs else {}
    return summary


def _order(patient: str) -> tuple[int, str]:
    return (int(patient), patient) if patient.isdigit() else (10**9, patient)


def train_grade(config_path: str | Path, *, output_dir: str | Path | None = None, device: str = "auto",
                export_bundle: str | Path | None = None, reuse_samples: bool = True) -> dict[str, Any]:
    """Collect samples, cross-validate rules and candidates, fit the best on everything and export it."""
    config = load_grade_train_settings(config_path)
    seed = config.seed
    out = Path(output_dir or config.output_dir or "runs/modic_grade")
    out.mkdir(parents=True, exist_ok=True)
    analysis_config = load_settings({"classification": {"method": "rules"}})
    significance = [int(v) for v in analysis_config.classification.level_significance]
    models = Models.load(analysis_config, device=device)

    cache = out / "samples.json"
    patch_cache = out / "patches.npz"
    if reuse_samples and cache.is_file() and patch_cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        spider = [EndplateSample(**s) for s in cached["spider"]]
        synthetic = [EndplateSample(**s) for s in cached["synthetic"]]
        truth, failed = cached["truth"], cached["failed"]
        with np.load(patch_cache) as stored:
            patches = stored["spider"]
        log.info("reusing %d SPIDER and %d synthetic samples from %s", len(spider), len(synthetic), cache)
    else:
        data = config.data
        spider, patches, truth, failed = spider_samples(data.spider, models=models, config=analysis_config)
        synth = data.synthetic
        synthetic = synthetic_samples(
            seeds=range(synth.seed_start, synth.seed_start + synth.count) if synth else range(0),
            synth_config=synth.config if synth else "default",
            models=models,
            config=analysis_config,
        )
        atomic.write_text(cache, json.dumps({
            "spider": [asdict(s) for s in spider], "synthetic": [asdict(s) for s in synthetic],
            "truth": truth, "failed": failed, "segmentation": models.info["segmentation"],
        }) + "\n")
        with atomic.temporary_path(patch_cache) as tmp:
            np.savez_compressed(tmp, spider=patches)

    rules = grading_metrics(level_results(spider, [s.rule_type for s in spider], truth, significance, failed))
    results: dict[str, Any] = {"rules": {k: rules[k] for k in (
        "presence_balanced_accuracy", "presence_kappa", "presence_sensitivity", "presence_specificity",
        "type_kappa", "patient_sensitivity", "patient_specificity", "n_levels", "confusion_matrix")}}
    cv = config.cross_validation
    candidates = config.candidates.chosen()
    for kind, params in candidates.items():
        results[kind] = cross_validate(
            kind, params, spider, synthetic, truth, failed,
            folds=cv.folds, repeats=cv.repeats, seed=seed, significance=significance,
        )
        log.info("%s: %s", kind, {k: v for k, v in results[kind].items() if not isinstance(v, dict)})
    best = max(candidates, key=lambda k: (results[k]["presence_balanced_accuracy"] or 0, results[k]["presence_kappa"] or 0))
    patch_settings = config.patch_model
    if patch_settings:
        runs, _ = cross_validate_patches(
            patches, spider, patch_settings, folds=cv.folds, repeats=cv.repeats, seed=seed,
            evaluate=lambda predicted: grading_metrics(level_results(spider, predicted, truth, significance, failed)),
        )
        results["patch"] = summarise_runs(runs)
        log.info("patch: %s", {k: v for k, v in results["patch"].items() if not isinstance(v, dict)})
    method_of = {"rules": "rules", best: "learned", "patch": "patch"}
    ranked = sorted(
        (k for k in method_of if k in results),
        key=lambda k: (results[k]["presence_balanced_accuracy"] or 0, results[k]["presence_kappa"] or 0),
        reverse=True,
    )
    summary = {"cross_validation": results, "best_candidate": best, "n_spider_samples": len(spider),
               "n_synthetic_samples": len(synthetic), "failed_patients": failed,
               "recommended_method": method_of[ranked[0]]}
    atomic.write_text(out / "cv_metrics.json", json.dumps(summary, indent=2) + "\n")

    export = config.export
    bundle = export_bundle or (export.bundle_dir if export else None)
    if bundle:
        model = build_candidate(best, candidates[best], seed=seed)
        x = np.array([s.features for s in [*spider, *synthetic]])
        y = np.array([s.target for s in [*spider, *synthetic]])
        model.fit(x, y)
        export_grade_bundle(Path(bundle), model=model, kind=best, summary=summary,
                            synthetic_studies=config.data.synthetic.count if config.data.synthetic else 0,
                            segmentation=models.info["segmentation"])
        summary["bundle"] = str(bundle)
    patch_bundle = export.patch_bundle_dir if export else None
    if patch_settings and patch_bundle:
        export_patch_bundle(Path(patch_bundle), patches=patches, samples=spider, settings=patch_settings,
                            summary=summary, grid=to_dict(analysis_config.classification.patches), seed=seed,
                            segmentation=models.info["segmentation"])
        summary["patch_bundle"] = str(patch_bundle)
    return summary


def export_patch_bundle(root: Path, *, patches: np.ndarray, samples: Sequence[EndplateSample],
                        settings: PatchModelSettings, summary: Mapping[str, Any], grid: Mapping[str, Any], seed: int,
                        segmentation: Mapping[str, Any]) -> None:
    """Fit the patch network on every SPIDER endplate and write it as a MONAI bundle."""
    bags, bag_labels = level_bags(samples)
    network = fit_network(patches, bags, bag_labels, settings, seed=seed)
    write_bundle(
        root,
        network=network,
        network_def=settings.network_def,
        settings={"patches": dict(grid), "threshold": float(settings.threshold), "rules": to_dict(settings.rules)},
        metadata={
            "version": __version__,
            "task": "Probability that a vertebral endplate's marrow shows a Modic change, from T1/T2 patches",
            "training_data": "SPIDER mid-sagittal T1/T2 pairs with radiologists' Modic gradings (van der Graaf et al., "
                             "Sci Data 2024, CC BY 4.0); each level a bag of its two endplates (multiple-instance "
                             "learning: the level is changed when its more changed endplate is)",
            "n_training_endplates": len(samples),
            "segmentation_model_used": dict(segmentation),
            "cross_validation": summary["cross_validation"].get("patch"),
            "intended_use": "Research only. Not for diagnosis or treatment decisions.",
            "network_data_format": {
                "inputs": {"patch": {"type": "image", "num_channels": 3, "spatial_shape": [grid["rows"], grid["cols"]],
                                     "channel_def": {"0": "T1 / reference marrow", "1": "T2 / reference marrow",
                                                     "2": "endplate band mask"}}},
                "outputs": {"pred": {"type": "probabilities", "num_channels": 2,
                                     "channel_def": {"0": "unchanged", "1": "Modic change"}}},
            },
        },
    )


def export_grade_bundle(root: Path, *, model: Any, kind: str, summary: Mapping[str, Any], synthetic_studies: int,
                        segmentation: Mapping[str, Any]) -> None:
    """Write ``configs/metadata.json`` and ``models/model.skops`` of the grading bundle.

    ``synthetic_studies``: how many synthetic studies gave the ``summary["n_synthetic_samples"]`` endplates.
    """
    import hashlib

    import skops.io as sio

    blob = sio.dumps(model)
    metadata = {
        "version": __version__,
        "task": "Modic type (0-3) of a vertebral endplate from T1/T2 marrow signal features",
        "model_kind": kind,
        "classes": [int(c) for c in model.classes_],
        "feature_names": list(FEATURE_NAMES),
        "training_data": {
            "spider": "SPIDER mid-sagittal T1/T2 pairs with radiologists' Modic gradings (van der Graaf et al., "
                      "Sci Data 2024, CC BY 4.0); level grades given to both endplates",
            "synthetic": f"{summary['n_synthetic_samples']} endplates of modic synthetic studies "
                         f"({synthetic_studies} studies)",
            "n_spider_samples": summary["n_spider_samples"],
        },
        "segmentation_model_used": dict(segmentation),
        "cross_validation": summary["cross_validation"],
        "intended_use": "Research only. Not for diagnosis or treatment decisions.",
        "modic_model_sha256": hashlib.sha256(blob).hexdigest(),
    }
    atomic.write_bytes(root / "models" / MODEL_FILE, blob)
    atomic.write_text(root / "configs" / "metadata.json", json.dumps(metadata, indent=2) + "\n")
