"""Disc signal per Pfirrmann grade, on SPIDER and on synthetic studies, as the pipeline measures it.

The presence model reads the disc next to each endplate
(:mod:`modic.classification.disc`): its median T1 and T2 signal over the mean
reference-marrow median of the two bodies around it. For synthetic studies to
test that model fairly, a synthetic disc of a given Pfirrmann grade must read
like a real one. This script runs the analysis pipeline (segmentation, levels,
disc measures) on

* the ``spider_midsag`` pairs, grade from the radiologists' ``gradings.csv``;
* ``--synthetic N`` generated studies (seeds ``--seed`` .. ``--seed + N - 1``),
  each on its mid-sagittal T1/T2 slice pair (the slice crossing the most
  vertebral body), as ``spider_midsag`` holds them; grade from the generator's truth,

and prints, per source, sequence and grade, the number of L3-S1 discs measured
and the median and quartiles of that ratio. It calibrated the disc tissues and
nucleus extent of ``configs/synth/default.yaml`` (``docs/synthetic.md``).

Usage:
    python scripts/disc_signal_by_grade.py [--spider ../shared/datasets/spider_midsag]
        [--synthetic 12] [--seed 123000] [--synth-config default]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from modic.errors import ModicError
from modic.evaluation.spider import load_patient_images, read_gradings, read_spacings
from modic.io.study import StudyImages
from modic.pipeline import Models, analyze_images
from modic.progress import progress
from modic.results import StudyAnalysis
from modic.settings import AnalysisSettings, load_settings
from modic.synth import SyntheticStudy, generate_study, to_study_images

SEQUENCES = ("t1", "t2")
Ratios = dict[tuple[str, int], list[float]]  # (sequence, grade) -> disc ratio medians


def disc_ratios(analysis: StudyAnalysis, grades: dict[str, int]) -> Iterator[tuple[str, int, float]]:
    """(sequence, grade, disc median over marrow) of every graded level the analysis measured."""
    for level in analysis.levels:
        disc = next((g.features.disc for g in level.endplates if g.features.disc is not None), None)
        if disc is None or level.level not in grades:
            continue
        for sequence in SEQUENCES:
            signal = getattr(disc, sequence)
            if signal is not None and np.isfinite(signal.ratio_median):
                yield sequence, grades[level.level], float(signal.ratio_median)


def measure_spider(root: Path, *, models: Models, config: AnalysisSettings) -> Ratios:
    ratios: Ratios = defaultdict(list)
    grades = read_gradings(root, column="Pfirrman grade")  # SPIDER's spelling
    spacings = read_spacings(root)
    for patient in progress(sorted(grades, key=int), desc="spider_midsag patients", unit="patient"):
        try:
            analysis = analyze_images(load_patient_images(root, patient, spacings), models=models, config=config)
        except ModicError:
            continue
        for sequence, grade, ratio in disc_ratios(analysis, grades[patient]):
            ratios[(sequence, grade)].append(ratio)
    return ratios


def mid_sagittal(study: SyntheticStudy) -> StudyImages:
    """The study's T1 and T2 (on the T1 grid) at the sagittal slice crossing the most vertebral body."""
    images = to_study_images(study)
    k = int(np.argmax((study.vertebra_instances.array > 0).sum(axis=(0, 1))))
    return StudyImages(t1=images.t1.slice_at(k), t2=images.t2.slice_at(k), t2_native=None, decisions=[],
                       study_uid=None, series={})


def measure_synthetic(
    n: int, seed: int, synth_config: str, *, models: Models, config: AnalysisSettings
) -> Ratios:
    ratios: Ratios = defaultdict(list)
    for study_seed in progress(range(seed, seed + n), desc="synthetic studies", unit="study"):
        study = generate_study(seed=study_seed, config=synth_config)
        grades = {disc.name: disc.pfirrmann for disc in study.anatomy.discs}
        analysis = analyze_images(mid_sagittal(study), models=models, config=config)
        for sequence, grade, ratio in disc_ratios(analysis, grades):
            ratios[(sequence, grade)].append(ratio)
    return ratios


def table(name: str, ratios: Ratios) -> str:
    lines = [f"| {name} | grade | discs | median | quartiles |", "|---|---:|---:|---:|---|"]
    for (sequence, grade), values in sorted(ratios.items()):
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        lines.append(f"| {sequence.upper()} | {grade} | {len(values)} | {median:.2f} | {q1:.2f}-{q3:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spider", type=Path, default=Path("../shared/datasets/spider_midsag"))
    parser.add_argument("--synthetic", type=int, default=12, help="number of synthetic studies (0: none)")
    parser.add_argument("--seed", type=int, default=123000, help="first synthetic seed")
    parser.add_argument("--synth-config", default="default")
    args = parser.parse_args()
    config = load_settings(None)
    models = Models.load(config, device="cpu", bundle=None)
    if args.spider.is_dir():
        print(table("SPIDER mid-sagittal", measure_spider(args.spider, models=models, config=config)))
    if args.synthetic > 0:
        ratios = measure_synthetic(args.synthetic, args.seed, args.synth_config, models=models, config=config)
        print(table(f"synthetic ({args.synth_config}), mid-sagittal", ratios))


if __name__ == "__main__":
    main()
