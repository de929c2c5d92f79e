"""Choose a segmentation bundle's background weight on its training cases and store it in the bundle.

The network's most probable class makes vertebral bodies and discs about 10 %
larger than the manual outlines of ``lumbar_seg``; SPIDER's disc outlines
(``spider_t2space``) are tighter still. Multiplying the background
probability by a weight before the classes are renormalised (the bundle's
``modic.background_weight``, read by :func:`modic.segmentation.bundle.load_bundle`)
moves every decision boundary the same way. This script segments each
*training* case of a seg training config once, re-scores it for every
candidate weight exactly as ``modic evaluate seg`` does (weight, then the
bundle's smoothing across slices, then the levels stage), and prints the mean
Dice per structure and the level accuracy. The training patients of
``data.spider_t2space`` (when the config has one) are scored the same way, for
bodies and discs. The weight with the best mean Dice over all training cases is
chosen; the config's ``validation_cases`` and ``spider_t2space_validation`` are
never looked at, so ``modic evaluate seg`` on them stays a held-out check.

Usage:
    python scripts/calibrate_seg.py --config configs/seg/finetune.yaml \
        [--bundle models/spine_seg] [--weights 1 1.5 2 3 4 6] [--write]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modic import atomic
from modic.io.volume import Volume
from modic.datasets.lumbar_seg import load_case
from modic.evaluation.segmentation import score_probabilities
from modic.evaluation.segmentation_spider import score_patient
from modic.segmentation.bundle import default_bundle_path, load_bundle
from modic.datasets.lumbar_seg import read_cases_csv
from modic.datasets import spider_t2space
from modic.segmentation.infer import SegmentationModel, reweight_background, smooth_across_slices
from modic.settings import load_settings
from modic.training.settings import load_train_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="seg training config whose training cases to use")
    parser.add_argument("--bundle", default=str(default_bundle_path()), help="segmentation bundle folder")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    parser.add_argument("--write", action="store_true", help="store the chosen weight in the bundle")
    args = parser.parse_args()
    if any(w <= 0 for w in args.weights):
        parser.error(f"--weights must be positive; got {args.weights}")

    config = load_train_config(args.config)
    data = config.settings.data
    if data.lumbar_seg is None:
        parser.error(f"{args.config} names no data.lumbar_seg folder to calibrate on")
    root = Path(data.lumbar_seg)
    held_out = set(data.validation_cases)
    cases = [c for c in read_cases_csv(root) if c.case not in held_out]
    bundle = load_bundle(args.bundle)
    model = SegmentationModel(bundle.network, settings=bundle.settings, slice_context_mm=bundle.slice_context_mm)
    levels = load_settings().levels

    dice: dict[float, dict[str, list[float]]] = {w: {} for w in args.weights}
    named: dict[float, list[bool]] = {w: [] for w in args.weights}

    def weighted(probabilities: np.ndarray, image: Volume, weight: float) -> np.ndarray:
        axis = image.lateral_axis
        return smooth_across_slices(
            reweight_background(probabilities, weight), sigma_mm=bundle.slice_sigma_mm,
            spacing_mm=float(image.spacing[axis]), axis=axis + 1,
            max_spacing_mm=bundle.slice_sigma_max_spacing_mm,
        )

    for case in tqdm(cases, desc="training cases", unit="case"):
        image, truth = load_case(root, case)
        probabilities = model.predict_probabilities(image)
        for weight in args.weights:
            result = score_probabilities(
                case, image, truth, weighted(probabilities, image, weight), levels=levels, started=time.perf_counter()
            )
            dice[weight].setdefault(case.structure, []).append(result.dice)
            if result.level_correct is not None:
                named[weight].append(result.level_correct)

    spider_root = data.spider_t2space
    spider_held_out = set(data.spider_t2space_validation)
    patients = [p for p in spider_t2space.read_patients(spider_root) if p not in spider_held_out] if spider_root else []
    for patient in tqdm(patients, desc="spider_t2space training patients", unit="patient"):
        image, mask = spider_t2space.load_patient(spider_root, patient)
        body = spider_t2space.vertebral_body_mask(mask, image.affine)
        probabilities = model.predict_probabilities(image)
        for weight in args.weights:
            result = score_patient(
                patient, image, mask, body, weighted(probabilities, image, weight), levels=levels,
                started=time.perf_counter(),
            )
            dice[weight].setdefault("vertebral_body", []).append(result.dice_vertebral_body)
            dice[weight].setdefault("disc", []).append(result.dice_disc)
            named[weight].append(result.level_correct)

    print(f"{len(cases)} lumbar_seg training cases and {len(patients)} spider_t2space training patients of "
          f"{args.config} (held out and not used: {len(held_out)} and {len(spider_held_out)})")
    print(f"{'weight':>7} {'Dice body':>10} {'Dice disc':>10} {'Dice all':>9} {'levels':>7}")
    overall = {}
    for weight in args.weights:
        scores = dice[weight]
        overall[weight] = float(np.mean([d for values in scores.values() for d in values]))
        body, disc = (np.mean(scores[k]) if scores.get(k) else float("nan") for k in ("vertebral_body", "disc"))
        print(f"{weight:7.2f} {body:10.4f} {disc:10.4f} {overall[weight]:9.4f} "
              f"{sum(named[weight]):>3}/{len(named[weight])}")
    chosen = max(args.weights, key=lambda w: overall[w])
    print(f"chosen background weight: {chosen:g} (bundle now: {bundle.background_weight:g})")
    if args.write:
        path = bundle.path / "configs" / "inference.json"
        inference = json.loads(path.read_text(encoding="utf-8"))
        inference["modic"]["background_weight"] = chosen
        atomic.write_text(path, json.dumps(inference, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
