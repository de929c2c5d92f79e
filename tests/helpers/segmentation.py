"""Helpers shared by the ``test_segmentation_*`` modules.

Training data is built in ``tmp_path`` so that nothing here needs the real
``../shared/datasets``: a small folder in the ``lumbar_seg`` layout (NIfTI
volumes with instance labels and a ``cases.csv``), or an empty one that lets a
training config run on synthetic studies alone.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from modic.training.settings import TrainConfig, load_train_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO_ROOT / "configs" / "seg" / "smoke.yaml"
CASES_HEADER = "case,source_set,structure,n_labels,shape,levels_caudal_first\n"

# (source_set, structure, levels_caudal_first) of the cases that write_lumbar_seg makes.
FAKE_CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "vb1_fake": ("VB1", "vertebral_body", ("S1", "L5", "L4")),
    "vb3_fake": ("VB3", "vertebral_body", ("L5", "L4", "L3")),
    "ivd_fake": ("IVD", "disc", ("L5-S1", "L4-L5")),
}
FAKE_SHAPE = (10, 48, 80)
"""Array axes of the fake volumes: right (slices), anterior, superior; 1 mm voxels."""


def fake_case_arrays(structure: str, n_labels: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image and instance labels of a box-shaped spine: bodies 10 mm high with 6 mm discs between them.

    Instance 1 is the lowest structure (the lumbar_seg convention "caudal first").
    """
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 10.0, FAKE_SHAPE).astype(np.float32)
    labels = np.zeros(FAKE_SHAPE, dtype=np.int16)
    for level in range(3):
        body = slice(4 + 16 * level, 14 + 16 * level)
        disc = slice(14 + 16 * level, 20 + 16 * level)
        image[2:8, 10:34, body] += 300.0
        image[2:8, 12:32, disc] += 600.0
        if structure == "vertebral_body" and level < n_labels:
            labels[2:8, 10:34, body] = level + 1
        if structure == "disc" and level < n_labels:
            labels[2:8, 12:32, disc] = level + 1
    return image, labels


def write_lumbar_seg(root: Path, names: tuple[str, ...] = tuple(FAKE_CASES)) -> Path:
    """A small dataset folder in the lumbar_seg layout with the ``FAKE_CASES`` named; returns ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    rows = [CASES_HEADER]
    for index, name in enumerate(names):
        source, structure, levels = FAKE_CASES[name]
        image, labels = fake_case_arrays(structure, len(levels), seed=index)
        nib.save(nib.Nifti1Image(image, np.eye(4)), str(root / "images" / f"{name}.nii.gz"))
        nib.save(nib.Nifti1Image(labels, np.eye(4)), str(root / "labels" / f"{name}.nii.gz"))
        shape = "x".join(str(n) for n in FAKE_SHAPE)
        rows.append(f"{name},{source},{structure},{len(levels)},{shape},{';'.join(levels)}\n")
    (root / "cases.csv").write_text("".join(rows), encoding="utf-8")
    return root


SPIDER_HEADER = "patient,spider_subset,n_slices,shape,pixel_spacing_mm,slice_spacing_mm\n"
SPIDER_AFFINE = np.diag([1.0, -1.0, -1.0, 1.0])
"""Axes of the fake spider_t2space volumes as in the dataset: right, posterior, inferior (1 mm)."""


def fake_spider_arrays(*, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask (0-3) of a box spine in the spider_t2space convention.

    Axes: sagittal slice, anterior -> posterior, superior -> inferior. Three vertebrae,
    each a body (AP 8-30) joined to an arch (AP 36-44) by pedicles in the lateral slices
    only; the canal (AP 31-35) runs the whole height in the middle slices; discs between
    the bodies; no sacrum.
    """
    rng = np.random.default_rng(seed)
    shape = (10, 48, 80)
    image = rng.normal(60.0, 8.0, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    for level in range(3):
        top = 10 + 22 * level
        body, disc = slice(top, top + 16), slice(top + 16, top + 22)
        mask[2:8, 8:31, body] = 1
        mask[2:8, 36:45, body] = 1
        mask[[2, 3, 6, 7], 31:36, body] = 1
        mask[2:8, 10:29, disc] = 2
    mask[4:6, 31:36, 4:76] = 3
    image[mask == 1] += 150.0
    image[mask == 2] += 260.0
    image[mask == 3] += 300.0
    return image, mask


def write_spider_t2space(root: Path, patients: tuple[str, ...] = ("1", "2")) -> Path:
    """A small dataset folder in the spider_t2space layout; returns ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    rows = [SPIDER_HEADER]
    for index, patient in enumerate(patients):
        image, mask = fake_spider_arrays(seed=index)
        nib.save(nib.Nifti1Image(image.astype(np.uint8), SPIDER_AFFINE), str(root / "images" / f"{patient}.nii.gz"))
        nib.save(nib.Nifti1Image(mask, SPIDER_AFFINE), str(root / "labels" / f"{patient}.nii.gz"))
        rows.append(f"{patient},training,{image.shape[0]},{'x'.join(map(str, image.shape))},1.0 1.0,1.0\n")
    (root / "cases.csv").write_text("".join(rows), encoding="utf-8")
    return root


def empty_lumbar_seg(root: Path) -> Path:
    """A lumbar_seg folder with no cases: how a config trains on synthetic studies only."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cases.csv").write_text(CASES_HEADER, encoding="utf-8")
    return root


def synthetic_smoke_config(tmp_path: Path, **overrides: Any) -> TrainConfig:
    """The smoke config on one tiny synthetic study (its T1 and T2), no real data.

    ``overrides`` use ``__`` for dots, e.g. ``training__epochs=3``.
    """
    base: dict[str, Any] = {
        "data.lumbar_seg": str(empty_lumbar_seg(tmp_path / "no_real_cases")),
        "data.synthetic.count": 1,
        "data.synthetic.config": "tiny",
        "data.synthetic.seed_start": 0,
    }
    base.update({key.replace("__", "."): value for key, value in overrides.items()})
    return load_train_config(SMOKE_CONFIG, overrides=base)


def read_metrics(path: Path) -> list[dict[str, str]]:
    """Rows of a run's ``metrics.csv`` (values as written)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def state_dicts_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def max_abs_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    return max(float(np.abs(np.asarray(a[k], dtype=float) - np.asarray(b[k], dtype=float)).max()) for k in a)
