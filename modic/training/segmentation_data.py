"""Training and validation data for the segmentation network.

Three sources, all brought to the network grid (:mod:`modic.preprocessing`):

* a folder in the ``lumbar_seg`` layout (``images/``, ``labels/``,
  ``cases.csv``): real volumes where each case labels one structure;
  instance labels become semantic classes and the case records which classes
  its labels annotate (the rest are *unlabelled*, see
  :mod:`modic.training.losses`);
* a folder in the ``spider_t2space`` layout (:mod:`modic.datasets.spider_t2space`):
  clinical 3D T2 volumes with bodies and discs labelled, the sacrum unlabelled;
* synthetic studies from :mod:`modic.synth`, fully labelled, T1 and T2 each
  used as a separate single-channel case.

Samples are 2D sagittal slabs: the mean of ``thickness`` adjacent slices
around a centre slice, labelled with the centre slice's labels, which mimics
the 3-5 mm slices of clinical series on 1 mm training volumes. For a network
that reads a slice with its neighbours (``slice_context_mm``), the slabs
``slice_context_mm`` to either side become two more channels, as
:func:`modic.preprocessing.sagittal.with_slice_context` builds them at inference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modic.errors import InputError
from modic.io.volume import Volume
from modic.preprocessing.sagittal import to_network_grid
from modic.datasets import spider_t2space
from modic.datasets.lumbar_seg import load_case, read_cases_csv, semantic_from_instances
from modic.segmentation.classes import N_CLASSES


@dataclass(frozen=True)
class SegCase:
    """One training/validation volume on the network grid.

    Attributes:
        name: case identifier.
        image: ``(slices, rows, cols)`` float32 raw intensities.
        label: ``(slices, rows, cols)`` uint8 semantic classes.
        labelled: bool ``(N_CLASSES,)``: which classes ``label`` annotates.
        source: data source tag (e.g. ``VB1``, ``IVD``, ``synthetic``).
        affine: voxel-to-RAS affine of the network grid.
    """

    name: str
    image: np.ndarray
    label: np.ndarray
    labelled: np.ndarray
    source: str
    affine: np.ndarray

    def as_volume(self) -> Volume:
        """The image as a Volume on its (network-grid) geometry."""
        return Volume(self.image, self.affine, {"source": self.name})

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between the sagittal slices of the network grid."""
        return float(np.linalg.norm(self.affine[:3, 0]))

    @property
    def foreground_slices(self) -> np.ndarray:
        return np.flatnonzero(self.label.reshape(self.label.shape[0], -1).any(axis=1))


def load_lumbar_seg(root: str | Path, *, names: Iterable[str] | None = None, spacing_mm: float) -> list[SegCase]:
    """Load the cases of a lumbar_seg-layout folder (all, or those in ``names``) on the network grid."""
    root = Path(root)
    wanted = set(names) if names is not None else None
    cases = []
    for entry in read_cases_csv(root):
        if wanted is not None and entry.case not in wanted:
            continue
        image, instances = load_case(root, entry)
        semantic, labelled = semantic_from_instances(instances, entry)
        grid_image, affine = _grid(image, spacing_mm, "bilinear")
        grid_label, _ = _grid(image.with_array(semantic.astype(np.float32)), spacing_mm, "nearest")
        cases.append(
            SegCase(
                name=entry.case,
                image=grid_image,
                label=grid_label.astype(np.uint8),
                labelled=labelled,
                source=entry.source_set,
                affine=affine,
            )
        )
    if wanted is not None and len(cases) != len(wanted):
        missing = sorted(wanted - {c.name for c in cases})
        raise InputError(f"cases {missing} are not listed in {root / 'cases.csv'}")
    return cases


def load_spider_t2space(root: str | Path, *, names: Iterable[str] | None = None, spacing_mm: float) -> list[SegCase]:
    """Load patients of a spider_t2space-layout folder (all, or those in ``names``) on the network grid.

    Labels follow :func:`modic.datasets.spider_t2space.semantic_labels`: bodies and discs
    labelled, posterior elements and canal background, the (unannotated) sacrum unlabelled.
    """
    cases = []
    for patient in spider_t2space.select_patients(root, names):
        image, mask = spider_t2space.load_patient(root, patient)
        semantic, labelled = spider_t2space.semantic_labels(mask, image.affine)
        grid_image, affine = _grid(image, spacing_mm, "bilinear")
        grid_label, _ = _grid(image.with_array(semantic.astype(np.float32)), spacing_mm, "nearest")
        cases.append(
            SegCase(
                name=f"spider_{patient}",
                image=grid_image,
                label=grid_label.astype(np.uint8),
                labelled=labelled,
                source=spider_t2space.SOURCE,
                affine=affine,
            )
        )
    return cases


def synthetic_cases(*, seeds: Sequence[int], config: str, spacing_mm: float) -> list[SegCase]:
    """T1 and T2 of synthetic studies as fully labelled single-channel cases."""
    from modic.synth import generate_study

    from modic.io.resample import resample_to

    labelled = np.ones(N_CLASSES, dtype=bool)
    cases = []
    for seed in seeds:
        study = generate_study(seed=seed, config=config)
        for weighting, volume in (("t1", study.t1), ("t2", study.t2)):
            semantic = resample_to(study.semantic, volume, interpolation="nearest")
            label, _ = _grid(semantic, spacing_mm, "nearest")
            image, affine = _grid(volume, spacing_mm, "bilinear")
            cases.append(
                SegCase(f"synth{seed}_{weighting}", image, label.astype(np.uint8), labelled, "synthetic", affine)
            )
    return cases


def _grid(volume: Volume, spacing_mm: float, mode: str) -> tuple[np.ndarray, np.ndarray]:
    grid = to_network_grid(volume, spacing_mm=spacing_mm, mode=mode)
    return grid.stack.numpy().astype(np.float32), grid.affine


@dataclass(frozen=True)
class SlabSpec:
    case: int
    centre: int
    thickness: int


def sample_specs(
    cases: Sequence[SegCase],
    *,
    n: int,
    rng: np.random.Generator,
    case_weights: Sequence[float],
    foreground_fraction: float,
    max_thickness: int,
) -> list[SlabSpec]:
    """Draw ``n`` slab specifications: a case by weight, a centre slice (mostly with labels), a thickness."""
    weights = np.asarray(case_weights, dtype=float)
    chosen = rng.choice(len(cases), size=n, p=weights / weights.sum())
    specs = []
    for index in chosen:
        case = cases[index]
        foreground = case.foreground_slices
        if foreground.size and rng.random() < foreground_fraction:
            centre = int(rng.choice(foreground))
        else:
            centre = int(rng.integers(case.image.shape[0]))
        specs.append(SlabSpec(int(index), centre, int(rng.integers(1, max_thickness + 1))))
    return specs


def extract_slab(case: SegCase, spec: SlabSpec, *, slice_context_mm: float = 0.0) -> dict[str, torch.Tensor]:
    """The sample dict for one slab: ``image`` ``(channels, rows, cols)``, ``label`` ``(1, rows, cols)``, ``labelled`` ``(C,)``.

    One image channel, or three with ``slice_context_mm`` > 0: the slabs centred
    that far to either side of the centre slice (interpolated between slices,
    the edge slab beyond the volume), then the centre slab.
    """
    centre = _slab(case, spec.centre, spec.thickness)
    if slice_context_mm > 0:
        offset = slice_context_mm / case.slice_spacing_mm
        sides = [_slab_at(case, spec.centre + sign * offset, spec.thickness) for sign in (-1, 1)]
        image = np.stack([sides[0], centre, sides[1]])
    else:
        image = centre[None]
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
        "label": torch.from_numpy(np.ascontiguousarray(case.label[spec.centre][None])),
        "labelled": torch.from_numpy(case.labelled.copy()),
    }


def _slab(case: SegCase, centre: int, thickness: int) -> np.ndarray:
    """Mean of ``thickness`` adjacent slices around slice ``centre`` (fewer at the volume's edges)."""
    half = thickness // 2
    low = max(centre - half, 0)
    high = min(centre - half + thickness, case.image.shape[0])
    return case.image[low:max(high, low + 1)].mean(axis=0)


def _slab_at(case: SegCase, position: float, thickness: int) -> np.ndarray:
    """:func:`_slab` at a fractional slice ``position``, interpolated linearly and clamped to the volume."""
    clamped = min(max(position, 0.0), case.image.shape[0] - 1.0)
    low = int(np.floor(clamped))
    weight = clamped - low
    slab = _slab(case, low, thickness)
    if weight == 0:
        return slab
    return (1 - weight) * slab + weight * _slab(case, min(low + 1, case.image.shape[0] - 1), thickness)
