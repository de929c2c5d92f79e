"""How often the input checks refuse real images flipped on purpose, and never the correct ones.

Every image is measured as stored, flipped head to foot, mirrored front to
back, and both (turned 180 degrees), its geometry unchanged (T1 and T2 of a
pair alike). Two measurements:

- ``network``: the orientation network alone (:func:`modic.pipeline.check_upright`
  with the shipped threshold), on each spider_midsag picture apart (as
  ``modic analyze-slice`` with one image), on each pair, and on the middle
  slice of the lumbar_seg and spider_t2space volumes. Fast (no segmentation).
- ``all``: besides, every spider_midsag pair, and its T1 and T2 alone, and
  every spider_t2space volume (as a T2-only study) through
  :func:`modic.pipeline.analyze_images` (the product's whole path, all checks,
  shipped settings); a flipped study counts as caught when the analysis
  refuses it (InputError/AnalysisError), a study as stored as falsely refused
  when it is refused at all. Images the network refuses cost no segmentation.

The stored orientation is head up and anterior left, except the pictures the
dataset itself stores head to foot (patient 57 both, 52 the T1,
:data:`modic.training.orientation_data.STORED_HEAD_TO_FOOT`): refusing those as stored
is right; they are listed, not counted.

The split is fixed (:func:`modic.training.orientation_data.split_half`): patients
(cases) sorted by ID (name), even positions the ``tune`` half, on which the
orientation network was trained and its threshold chosen, odd positions the
``report`` half, held out.

Usage:
    python scripts/orientation_check.py [--datasets ../shared/datasets] [--half tune|report|all]
                                        [--checks network|all] [--limit N]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from modic.errors import InputError, ModicError
from modic.evaluation.spider import load_patient_images, read_spacings
from modic.io.formats import read_nifti
from modic.io.study import StudyImages
from modic.io.volume import Volume
from modic.levels.curvature import lordosis_mm
from modic.pipeline import Models, analyze_images, check_upright
from modic.settings import AnalysisSettings, OrientationSettings, load_settings
from modic.training.orientation_data import (
    STORED_HEAD_TO_FOOT,
    lumbar_seg_cases,
    spider_patients,
    spider_t2space_patients,
    split_half,
)

VARIANTS = {"as stored": (), "upside down": ("head-foot",), "mirrored": ("front-back",), "both": ("head-foot", "front-back")}
WORLD_AXIS = {"front-back": 1, "head-foot": 2}
STORED_PATIENTS = {patient for patient, _ in STORED_HEAD_TO_FOOT}
ANALYSED = ("analysis pair", "analysis t1", "analysis t2")


@dataclass(frozen=True)
class Outcome:
    """One image, pair or volume in one variant: the refusal reason ("" when accepted)."""

    item: str
    variant: str
    refused: str
    lordosis: float | None
    seconds: float


def flipped(volume: Volume | None, flips: tuple[str, ...]) -> Volume | None:
    """``volume`` with its pixels reversed along the array axes closest to the named patient axes."""
    if volume is None:
        return None
    array = volume.array
    for name in flips:
        axis = int(np.argmax(np.abs(volume.affine[WORLD_AXIS[name], :3])))
        array = np.flip(array, axis=axis)
    return volume.with_array(np.ascontiguousarray(array))


def variant(images: StudyImages, flips: tuple[str, ...]) -> StudyImages:
    return replace(
        images, t1=flipped(images.t1, flips), t2=flipped(images.t2, flips), t2_native=flipped(images.t2_native, flips)
    )


def alone(images: StudyImages, role: str) -> StudyImages:
    """The study with only its ``role`` image."""
    kept = images.t1 if role == "t1" else images.t2_native
    return replace(images, t1=kept if role == "t1" else None, t2=kept if role == "t2" else None,
                   t2_native=kept if role == "t2" else None, series={})


def reason(message: str) -> str:
    """The check that refused, from its one-line message."""
    for key, name in (("mirrored", "mirrored"), ("flipped head to foot", "upside down"), ("T2-weighted", "swapped"),
                      ("same image", "identical")):
        if key in message:
            return name
    return "other: " + message[:60]


def checked(item: str, name: str, images: StudyImages, models: Models, settings: OrientationSettings) -> Outcome:
    """The orientation network's verdict on ``images`` (no segmentation)."""
    assert models.orientation is not None
    started = time.perf_counter()
    try:
        check_upright(images, model=models.orientation, settings=settings)
    except InputError as exc:
        return Outcome(item, name, reason(str(exc)), None, time.perf_counter() - started)
    return Outcome(item, name, "", None, time.perf_counter() - started)


def analysed(item: str, name: str, images: StudyImages, models: Models, config: AnalysisSettings) -> Outcome:
    """The whole analysis's verdict on ``images``."""
    started = time.perf_counter()
    try:
        analysis = analyze_images(images, models=models, config=config)
    except ModicError as exc:
        return Outcome(item, name, reason(str(exc)), None, time.perf_counter() - started)
    return Outcome(item, name, "", lordosis_mm(analysis.anatomy), time.perf_counter() - started)


def spider_outcomes(root: Path, patients: Sequence[str], models: Models, config: AnalysisSettings, *,
                    checks: str) -> dict[str, list[Outcome]]:
    """Outcomes per kind: the network on each ``picture`` and ``pair``; with ``checks == "all"`` the whole
    analysis of each pair (``analysis pair``) and of its T1 and T2 alone (``analysis t1``, ``analysis t2``)."""
    settings = config.input_checks.orientation
    spacings = read_spacings(root)
    kinds: dict[str, list[Outcome]] = {kind: [] for kind in ("picture", "pair", *ANALYSED)}
    for patient in patients:
        stored = load_patient_images(root, patient, spacings)
        for name, flips in VARIANTS.items():
            images = variant(stored, flips)
            for role in ("t1", "t2"):
                if (images.t1 if role == "t1" else images.t2_native) is None:
                    continue
                kinds["picture"].append(checked(f"{patient}_{role}", name, alone(images, role), models, settings))
                if checks == "all":
                    kinds[f"analysis {role}"].append(
                        analysed(f"{patient}_{role}", name, alone(images, role), models, config))
            if stored.t1 is None or stored.t2_native is None:
                continue
            kinds["pair"].append(checked(patient, name, images, models, settings))
            if checks == "all":
                kinds["analysis pair"].append(analysed(patient, name, images, models, config))
        if checks == "all":
            print(patient, " ".join(f"{o.variant}={o.refused or 'analysed'}" for o in kinds["analysis pair"][-4:]),
                  flush=True)
    return kinds


def volume_outcomes(volumes: dict[str, Path], models: Models, config: AnalysisSettings, *, analyse: bool) -> list[Outcome]:
    """The verdict on each 3D volume (as a T2-only study) in every variant: the network's, or with ``analyse``
    the whole analysis's."""
    settings = config.input_checks.orientation
    outcomes = []
    for item, path in volumes.items():
        stored = read_nifti(path)
        for name, flips in VARIANTS.items():
            volume = flipped(stored, flips)
            images = StudyImages(t1=None, t2=volume, t2_native=volume, decisions=[], study_uid=None, series={})
            outcomes.append(analysed(item, name, images, models, config) if analyse
                            else checked(item, name, images, models, settings))
        if analyse:
            print(item, " ".join(f"{o.variant}={o.refused or 'analysed'}" for o in outcomes[-4:]), flush=True)
    return outcomes


def stored_flipped(item: str) -> bool:
    """Whether ``item`` (a patient, ``patient_role`` picture or volume) is stored head to foot in the dataset."""
    patient, _, role = item.partition("_")
    return (patient, role) in STORED_HEAD_TO_FOOT if role else patient in STORED_PATIENTS


def summary(title: str, outcomes: Sequence[Outcome]) -> list[str]:
    """Refused/total per variant; items stored head to foot listed apart."""
    if not outcomes:
        return []
    lines = [f"  {title}: {len({o.item for o in outcomes})} items"]
    for name in VARIANTS:
        rows = [o for o in outcomes if o.variant == name]
        special = {o.item: o.refused or "accepted" for o in rows if stored_flipped(o.item)}
        rows = [o for o in rows if not stored_flipped(o.item)]
        refused = [o for o in rows if o.refused]
        label = "falsely refused" if name == "as stored" else "refused"
        lines.append(f"    {name:12s} {label} {len(refused)}/{len(rows)} {dict(Counter(o.refused for o in refused))}"
                     + (f" {[o.item for o in refused]}" if name == "as stored" and refused else "")
                     + (f"; stored head to foot, not counted: {special}" if special else ""))
        curves = sorted(o.lordosis for o in rows if o.lordosis is not None)
        if curves:
            lines.append(f"    {'':12s} lordosis of analysed pairs (mm): min {curves[0]:.1f}, n {len(curves)}")
    seconds = [o.seconds for o in outcomes if o.variant == "as stored" and not o.refused]
    if seconds:
        lines.append(f"    time per item as stored (accepted): median {np.median(seconds) * 1000:.1f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets")
    parser.add_argument("--half", choices=("tune", "report", "all"), default="report")
    parser.add_argument("--checks", choices=("network", "all"), default="network")
    parser.add_argument("--limit", type=int, help="only the first N patients (cases) of each half (a subset)")
    args = parser.parse_args()
    midsag, t2space, lumbar = (args.datasets / name for name in ("spider_midsag", "spider_t2space", "lumbar_seg"))
    spider_split = split_half(spider_patients(midsag))
    lumbar_split = split_half(lumbar_seg_cases(lumbar))
    config = load_settings()
    models = Models.load(config, device="cpu")
    analyse = args.checks == "all"
    for index, half in enumerate(("tune", "report")):
        if args.half not in (half, "all"):
            continue
        patients = spider_split[index][: args.limit]
        lines = [f"== {half} half" + (f" (first {args.limit} patients/cases)" if args.limit else "")]
        kinds = spider_outcomes(midsag, patients, models, config, checks=args.checks)
        t2space_volumes = {f"t2space:{p}": t2space / "images" / f"{p}.nii.gz"
                           for p in spider_t2space_patients(t2space) if p in set(spider_split[index])}
        lumbar_volumes = {f"lumbar_seg:{c}": lumbar / "images" / f"{c}.nii.gz"
                          for c in lumbar_split[index][: args.limit]}
        lines += summary("network, spider_midsag pictures one at a time", kinds["picture"])
        lines += summary("network, spider_midsag pairs", kinds["pair"])
        lines += summary("network, middle slice of lumbar_seg volumes", volume_outcomes(lumbar_volumes, models, config,
                                                                                          analyse=False))
        lines += summary("network, middle slice of spider_t2space volumes",
                         volume_outcomes(t2space_volumes, models, config, analyse=False))
        for kind in ANALYSED:
            lines += summary(f"all checks (analyze_images), spider_midsag {kind.removeprefix('analysis ')}",
                             kinds[kind])
        print("\n".join(lines), flush=True)
        if analyse:
            print("\n".join(summary("all checks (analyze_images), spider_t2space volumes as T2-only studies",
                                     volume_outcomes(t2space_volumes, models, config, analyse=True))), flush=True)


if __name__ == "__main__":
    main()
