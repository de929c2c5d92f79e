"""Builders shared by the ``test_batch_*`` modules: small synthetic cohorts in awkward folder layouts.

Studies come from :mod:`modic.synth` with the ``tiny`` config cut to 5 slices
per series, so that a study is analysed in about a second.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydicom

from modic.batch.manifest import read_manifest
from modic.batch.sources import key_of_uid
from modic.synth import generate_study, write_study

SMALL = {"extends": "tiny", "name": "batch-test", "series": {"t1": {"n_slices": [5, 5]}, "t2": {"n_slices": [5, 5]}}}
"""Synthetic studies of 5 sagittal slices of about 128 x 128 pixels."""


def make_study(seed: int, out: Path, *, extra_series: Iterable[str] = ()) -> Path:
    """Write study ``seed`` (DICOM and NIfTI) to ``out`` and return ``out``."""
    study = generate_study(seed=seed, config=SMALL)
    write_study(study, out, formats=("dicom", "nifti"), extra_series=tuple(extra_series))
    return out


def make_cohort(base: Path, seeds: Iterable[int]) -> list[str]:
    """Studies ``seeds`` generated under ``base/generated``, their T1 and T2 copied to ``base/root/s<seed>``.

    Returns the studies' output keys in the order of ``seeds``.
    """
    keys = []
    for seed in seeds:
        study = make_study(seed, base / "generated" / str(seed))
        for name in ("SAG_T1", "SAG_T2"):
            copy_series(series_folder(study, name), base / "root" / f"s{seed}" / name)
        keys.append(key_of(study / "dicom"))
    return keys


def series_folder(study: Path, name: str) -> Path:
    """The DICOM folder of the series whose folder name contains ``name`` (e.g. ``SAG_T1``)."""
    return next(folder for folder in sorted((study / "dicom").iterdir()) if name in folder.name)


def key_of(folder: Path) -> str:
    """The output key of the study of the first DICOM file under ``folder``."""
    first = next(path for path in sorted(folder.rglob("*")) if path.is_file())
    return key_of_uid(str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID))


def copy_series(source: Path, target: Path, *, prefix: str = "") -> None:
    """Copy the files of one series folder into ``target`` (created), prefixing their names."""
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.iterdir()):
        shutil.copy2(file, target / f"{prefix}{file.name}")


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def manifest(out: Path) -> list[dict[str, Any]]:
    return read_manifest(out / "manifest.jsonl")


def study_folders(out: Path) -> dict[str, Path]:
    """Finished and unfinished entries of an output folder, by name (summary and manifest left out)."""
    return {p.name: p for p in out.iterdir() if p.is_dir()}


def level_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "levels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def levels_of(folder: Path) -> list[tuple[str, int, list[int]]]:
    """(level, type, endplate types) of a report: what must not change between execution paths."""
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return [
        (level["level"], level["modic_type"], [endplate["modic_type"] for endplate in level["endplates"]])
        for level in report["levels"]
    ]
