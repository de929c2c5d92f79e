"""How often the input checks refuse real SPIDER slice pairs flipped on purpose, and never the correct ones.

Every patient of ``spider_midsag`` goes through :func:`modic.pipeline.analyze_images`
(the product's whole path, shipped settings) four times: as stored, flipped
head to foot, mirrored front to back, and both (turned 180 degrees), T1 and
T2 alike with their geometry unchanged. A flipped pair counts as caught when
the analysis refuses it (InputError/AnalysisError); a pair as stored counts as
falsely refused when it is refused for its orientation or contrast. The
stored orientation is head up and anterior left, except patients the dataset
itself stores head to foot (57 both images, 52 the T1): refusing those is right,
and they are listed, not counted as false refusals.

The split is fixed before looking: patients sorted by numeric ID, even
positions (0, 2, ...) the ``tune`` half used to choose thresholds, odd
positions the ``report`` half. The script prints, per half and per variant,
refused/total and the refusal reasons, the lumbar lordosis (mm) of the
analysed pairs, and the time per analysis.

Usage:
    python scripts/orientation_check.py [--data ../shared/datasets/spider_midsag] [--half tune|report|all]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from modic.errors import ModicError
from modic.evaluation.spider import load_patient_images, read_gradings, read_spacings
from modic.io.study import StudyImages
from modic.io.volume import Volume
from modic.levels.curvature import lordosis_mm
from modic.pipeline import Models, analyze_images, load_analysis_config

VARIANTS = {"as stored": (), "upside down": ("head-foot",), "mirrored": ("front-back",), "both": ("head-foot", "front-back")}
WORLD_AXIS = {"front-back": 1, "head-foot": 2}
STORED_HEAD_TO_FOOT = {"57", "52"}
"""Patients whose stored pictures (both, or the T1) are head to foot in the dataset itself."""


@dataclass(frozen=True)
class Outcome:
    patient: str
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


def reason(message: str) -> str:
    """The check that refused, from its one-line message."""
    for key, name in (("mirrored", "mirrored"), ("flipped head to foot", "upside down"), ("T2-weighted", "swapped"),
                      ("same image", "identical")):
        if key in message:
            return name
    return "other: " + message[:60]


def halves(patients: list[str]) -> dict[str, list[str]]:
    ordered = sorted(patients, key=int)
    return {"tune": ordered[0::2], "report": ordered[1::2]}


def run(root: Path, patients: list[str], models: Models) -> list[Outcome]:
    config = load_analysis_config()
    spacings = read_spacings(root)
    outcomes = []
    for patient in patients:
        stored = load_patient_images(root, patient, spacings)
        if stored.t1 is None or stored.t2_native is None:
            continue
        for name, flips in VARIANTS.items():
            started = time.perf_counter()
            try:
                analysis = analyze_images(variant(stored, flips), models=models, config=config)
            except ModicError as exc:
                outcomes.append(Outcome(patient, name, reason(str(exc)), None, time.perf_counter() - started))
                continue
            outcomes.append(Outcome(patient, name, "", lordosis_mm(analysis.anatomy), time.perf_counter() - started))
        print(patient, " ".join(f"{o.variant}={o.refused or 'analysed'}" for o in outcomes[-4:]), flush=True)
    return outcomes


def summary(half: str, outcomes: list[Outcome]) -> str:
    lines = [f"== {half}: {len({o.patient for o in outcomes})} patients"]
    for name in VARIANTS:
        rows = [o for o in outcomes if o.variant == name]
        if name == "as stored":
            false = [o.patient for o in rows if o.refused and o.patient not in STORED_HEAD_TO_FOOT]
            right = [o.patient for o in rows if o.refused and o.patient in STORED_HEAD_TO_FOOT]
            lines.append(f"  {name:12s} falsely refused {len(false)}/{len(rows)} {false}; "
                         f"stored head to foot refused: {right}")
        else:
            rows = [o for o in rows if o.patient not in STORED_HEAD_TO_FOOT]
            caught = [o for o in rows if o.refused]
            lines.append(f"  {name:12s} caught {len(caught)}/{len(rows)}  {dict(Counter(o.refused for o in caught))}")
        curves = sorted(o.lordosis for o in rows if o.lordosis is not None)
        if curves:
            lines.append(f"  {'':12s} lordosis of analysed pairs (mm): min {curves[0]:.1f}, median "
                         f"{curves[len(curves) // 2]:.1f}, n {len(curves)}")
    seconds = [o.seconds for o in outcomes if o.variant == "as stored" and not o.refused]
    if seconds:
        lines.append(f"  analysis of a stored pair: median {np.median(seconds):.2f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/spider_midsag")
    parser.add_argument("--half", choices=("tune", "report", "all"), default="all")
    args = parser.parse_args()
    split = halves(list(read_gradings(args.data)))
    models = Models.load(load_analysis_config(), device="cpu")
    for half in ("tune", "report") if args.half == "all" else (args.half,):
        print(summary(half, run(args.data, split[half], models)), flush=True)


if __name__ == "__main__":
    main()
