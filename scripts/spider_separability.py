"""How far one mid-sagittal slice can separate SPIDER's Modic gradings, whatever the classifier.

SPIDER's radiologists graded each level on the whole 3D study; ``spider_midsag``
holds one mid-sagittal T1/T2 slice pair per patient. This script measures how
much that slice pair says about the grades, independently of the shipped
classifiers' decision rules: every patient goes through the single-slice
pipeline of ``modic evaluate spider`` (segmentation, level names, endplate
bands, signal features), and each level L3-L4 .. L5-S1 gets

* the classifier's 19 signal features (``modic.classification.features``), the
  larger of the level's two endplates for each, all relative to the same
  body's reference marrow; and
* signal relative to the level's own disc, an internal standard that diffuse
  marrow change (e.g. fatty marrow throughout the spine) does not cancel:
  band median and 90th percentile, the two bodies' median, and the median of
  all lumbar bodies, each over the disc median, on T1 and on T2, plus the
  coefficient of variation of the two bodies.

It prints the ROC AUC of each feature alone for "Modic change present", and
the patient-level cross-validated ROC AUC, balanced accuracy and Cohen's kappa
of logistic regression and gradient boosting on all of them (threshold 0.5,
class-balanced), for the marrow-relative features, the disc-relative ones,
and both. Levels whose disc or bodies were not found are left out and counted.

Usage:
    python scripts/spider_separability.py [--data ../shared/datasets/spider_midsag] [--repeats 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modic.classification.features import FEATURE_NAMES
from modic.errors import ModicError
from modic.evaluation.spider import LEVELS, load_patient_images, read_gradings, read_spacings
from modic.levels.names import level_endplates
from modic.pipeline import Models, analyze_images
from modic.results import StudyAnalysis
from modic.settings import AnalysisSettings, load_settings

LUMBAR_BODIES = ("L1", "L2", "L3", "L4", "L5")


def level_features(analysis: StudyAnalysis, level: str) -> dict[str, float] | None:
    """Features of one level, or None when its disc, a body or an endplate grade is missing."""
    anatomy = analysis.anatomy
    upper, lower = level.split("-")
    disc = next((d for d in anatomy.discs if d.name == level), None)
    bodies = {v.name: v for v in anatomy.vertebrae}
    grades = {g.endplate: g for lv in analysis.levels for g in lv.endplates}
    endplates = level_endplates(level)
    if disc is None or upper not in bodies or lower not in bodies or not all(e in grades for e in endplates):
        return None
    features = {f"marrow_{name}": float(np.nanmax([grades[e].features.vector()[i] for e in endplates]))
                for i, name in enumerate(FEATURE_NAMES)}
    disc_mask = anatomy.disc_map == disc.label
    pair = np.isin(anatomy.vertebra_map, [bodies[upper].label, bodies[lower].label])
    lumbar = np.isin(anatomy.vertebra_map, [v.label for n, v in bodies.items() if n in LUMBAR_BODIES])
    regions = [r for r in map(anatomy.endplate, endplates) if r is not None]
    band = np.isin(anatomy.endplate_map, [r.label for r in regions])
    for sequence, volume in (("t1", analysis.images.t1), ("t2", analysis.images.t2)):
        if volume is None:
            continue
        image = volume.array
        disc_median = max(float(np.median(image[disc_mask])), 1e-6)
        features[f"disc_{sequence}_pair_bodies"] = float(np.median(image[pair])) / disc_median
        features[f"disc_{sequence}_lumbar_bodies"] = float(np.median(image[lumbar])) / disc_median
        features[f"disc_{sequence}_pair_cv"] = float(np.std(image[pair]) / max(np.mean(image[pair]), 1e-6))
        if band.any():
            features[f"disc_{sequence}_band_median"] = float(np.median(image[band])) / disc_median
            features[f"disc_{sequence}_band_p90"] = float(np.percentile(image[band], 90)) / disc_median
    return features


def collect(
    root: Path, models: Models, config: AnalysisSettings
) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray, int]:
    """Per-level features, presence truth, patient ids, and the number of levels left out."""
    truth = read_gradings(root)
    spacings = read_spacings(root)
    rows: list[dict[str, float]] = []
    present: list[int] = []
    patients: list[str] = []
    left_out = 0
    for patient, grades in tqdm(sorted(truth.items()), desc="patients", unit="patient"):
        try:
            analysis = analyze_images(load_patient_images(root, patient, spacings), models=models, config=config)
        except ModicError:
            left_out += len(grades)
            continue
        for level in LEVELS:
            if level not in grades:
                continue
            features = level_features(analysis, level)
            if features is None:
                left_out += 1
                continue
            rows.append(features)
            present.append(int(grades[level] > 0))
            patients.append(patient)
    return rows, np.array(present), np.array(patients), left_out


def cross_validated(
    x: np.ndarray, y: np.ndarray, patients: np.ndarray, *, repeats: int
) -> dict[str, tuple[float, float, float]]:
    """Mean (AUC, balanced accuracy, kappa) over ``repeats`` patient-level 5-fold splits, per model."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    candidates = {
        "logistic": make_pipeline(SimpleImputer(), StandardScaler(),
                                  LogisticRegression(C=0.3, max_iter=2000, class_weight="balanced")),
        "gradient boosting": HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05, max_iter=150,
                                                            class_weight="balanced"),
    }
    unique = np.unique(patients)
    results = {}
    for name, model in candidates.items():
        scores = []
        for repeat in range(repeats):
            order = dict(zip(unique, np.random.default_rng(repeat).permutation(len(unique))))
            groups = np.array([order[p] % 5 for p in patients])
            probability = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
            called = probability > 0.5
            scores.append(
                (roc_auc_score(y, probability), balanced_accuracy_score(y, called), cohen_kappa_score(y, called))
            )
        results[name] = tuple(float(v) for v in np.mean(scores, axis=0))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/spider_midsag"))
    parser.add_argument("--repeats", type=int, default=3, help="cross-validation repeats (default: 3)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1; got {args.repeats}")
    from sklearn.metrics import roc_auc_score

    config = load_settings()
    models = Models.load(config, device="cpu")
    rows, y, patients, left_out = collect(args.data, models, config)
    names = sorted(set().union(*rows))
    x = np.array([[row.get(n, np.nan) for n in names] for row in rows])
    print(f"{len(y)} levels of {len(np.unique(patients))} patients ({y.mean():.0%} with a Modic change); "
          f"{left_out} levels left out (disc, body or band not found)")
    print("ROC AUC of each feature alone (0.5 = no information; values under 0.5 shown as 1 - AUC):")
    single = []
    for column, name in enumerate(names):
        keep = np.isfinite(x[:, column])
        auc = roc_auc_score(y[keep], x[keep, column])
        single.append((max(auc, 1 - auc), name))
    for auc, name in sorted(single, reverse=True)[:12]:
        print(f"  {auc:.3f}  {name}")
    print(f"patient-level cross-validation, 5 folds x {args.repeats}: AUC / balanced accuracy / kappa")
    for label, prefix in (("marrow-relative", "marrow_"), ("disc-relative", "disc_"), ("both", "")):
        columns = [i for i, n in enumerate(names) if n.startswith(prefix)]
        for model, (auc, balanced, kappa) in cross_validated(x[:, columns], y, patients, repeats=args.repeats).items():
            print(f"  {label:16s} {model:18s} {auc:.3f} / {balanced:.3f} / {kappa:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
