"""Training and validation data for the segmentation network.

Three sources, all brought to the network grid (:mod:`modic.preprocessing`):

* a folder in the ``lumbar_seg`` layout (``images/``, ``labels/``,
  ``cases.csv``): real volumes where each case labels one structure;
  instance labels become semantic classes and the case records which classes
  its labels annotate (the rest are *unlabelled*, see
  :mod:`modic.segmentation.losses`);
* a folder in the ``spider_t2space`` layout (:mod:`modic.segmentation.spider_t2space`):
  clinical 3D T2 volumes with bodies and discs labelled, the sacrum unlabelled;
* synthetic studies from :mod:`modic.synth`, fully labelled, T1 and T2 each
  used as a separate single-channel case.

Samples are 2D sagittal slabs: the mean of ``thickness`` adjacent slices
around a centre slice, labelled with the centre slice's labels, which mimics
the 3-5 mm slices of clinical series on 1 mm training volumes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modic.errors import InputError
from modic.io.volume import Volume
from modic.preprocessing import to_network_grid
from modic.segmentation import spider_t2space
from modic.segmentation.classes import N_CLASSES, SegClass


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
    def foreground_slices(self) -> np.ndarray:
        return np.flatnonzero(self.label.reshape(self.label.shape[0], -1).any(axis=1))


@dataclass(frozen=True)
class LumbarSegCase:
    """A row of ``cases.csv`` in the lumbar_seg layout."""

    case: str
    source_set: str
    structure: str
    levels_caudal_first: tuple[str, ...]


def read_cases_csv(root: str | Path) -> list[LumbarSegCase]:
    """Parse ``root/cases.csv``; errors name the file and the bad value."""
    path = Path(root) / "cases.csv"
    if not path.is_file():
        raise InputError(f"'{path}' not found: a segmentation dataset folder needs images/, labels/ and cases.csv")
    cases = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            structure = (row.get("structure") or "").strip()
            if structure not in {"vertebral_body", "disc"}:
                raise InputError(
                    f"{path}: case '{row.get('case')}' has structure '{structure}'; expected 'vertebral_body' or 'disc'"
                )
            levels = tuple(s.strip() for s in (row.get("levels_caudal_first") or "").split(";") if s.strip())
            cases.append(LumbarSegCase(row["case"].strip(), (row.get("source_set") or "").strip(), structure, levels))
    return cases


def semantic_from_instances(instances: np.ndarray, case: LumbarSegCase) -> tuple[np.ndarray, np.ndarray]:
    """Semantic label map and labelled-class mask of a lumbar_seg case.

    Discs become :attr:`SegClass.DISC`. Vertebral bodies become
    :attr:`SegClass.VERTEBRAL_BODY`, except label 1 when the case names it S1,
    which becomes :attr:`SegClass.S1`; S1 counts as labelled only then.
    """
    semantic = np.zeros(instances.shape, dtype=np.uint8)
    labelled = np.zeros(N_CLASSES, dtype=bool)
    labelled[SegClass.BACKGROUND] = True
    if case.structure == "disc":
        semantic[instances > 0] = SegClass.DISC
        labelled[SegClass.DISC] = True
        return semantic, labelled
    semantic[instances > 0] = SegClass.VERTEBRAL_BODY
    labelled[SegClass.VERTEBRAL_BODY] = True
    if case.levels_caudal_first[:1] == ("S1",):
        semantic[instances == 1] = SegClass.S1
        labelled[SegClass.S1] = True
    return semantic, labelled


def load_nifti_volume(path: Path) -> Volume:
    import nibabel as nib

    image = nib.load(str(path))
    return Volume(np.asarray(image.dataobj, dtype=np.float32), image.affine.astype(float), {"source": str(path)})


def load_lumbar_seg(root: str | Path, *, names: Iterable[str] | None = None, spacing_mm: float) -> list[SegCase]:
    """Load the cases of a lumbar_seg-layout folder (all, or those in ``names``) on the network grid."""
    root = Path(root)
    wanted = set(names) if names is not None else None
    cases = []
    for entry in read_cases_csv(root):
        if wanted is not None and entry.case not in wanted:
            continue
        image = load_nifti_volume(root / "images" / f"{entry.case}.nii.gz")
        instances = load_nifti_volume(root / "labels" / f"{entry.case}.nii.gz")
        semantic, labelled = semantic_from_instances(np.rint(instances.array).astype(np.int32), entry)
        grid_image, affine = _grid(image, spacing_mm, "bilinear")
        grid_label, _ = _grid(instances.with_array(semantic.astype(np.float32)), spacing_mm, "nearest")
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

    Labels follow :func:`modic.segmentation.spider_t2space.semantic_labels`: bodies and discs
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


def extract_slab(case: SegCase, spec: SlabSpec) -> dict[str, torch.Tensor]:
    """The sample dict for one slab: ``image`` and ``label`` ``(1, rows, cols)``, ``labelled`` ``(C,)``."""
    half = spec.thickness // 2
    low = max(spec.centre - half, 0)
    high = min(spec.centre - half + spec.thickness, case.image.shape[0])
    image = case.image[low:max(high, low + 1)].mean(axis=0)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image[None], dtype=np.float32)),
        "label": torch.from_numpy(np.ascontiguousarray(case.label[spec.centre][None])),
        "labelled": torch.from_numpy(case.labelled.copy()),
    }
