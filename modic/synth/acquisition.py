"""Plan the series of a study: patient pose, slice geometry, protocol and sequence physics.

Grids are voxel-index to world RAS affines following the project convention
for DICOM-derived volumes (``i`` along the row direction of
ImageOrientationPatient, ``j`` along the column direction, ``k`` along the
slice normal). Sagittal series are planned like a technologist would: centred
on the lumbar spine, aligned to it up to a few degrees of obliquity, with the
sacrum included (or, for the no-sacrum variant, excluded). Every series draws
from its own random stream, so rendering an extra series never changes the
others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from modic.synth.anatomy import Anatomy, Vertebra
from modic.synth.config import (
    AcquiredSeriesSettings,
    AxialSeriesSettings,
    LocalizerSettings,
    PlanningSettings,
    SagittalSeriesSettings,
    SeriesProtocolSettings,
    SynthSettings,
    T2SeriesSettings,
)
from modic.synth.dicom_writer import PatientStudy, SeriesProtocol, deterministic_uid
from modic.synth.tissues import Sequence

SERIES_NAMES: tuple[str, ...] = ("t1", "t2", "stir", "t2fs", "axial", "localizer", "derived")
"""Every series the generator can produce; ``t1`` and ``t2`` are always rendered."""
EXTRA_SERIES: tuple[str, ...] = SERIES_NAMES[2:]

SAGITTAL_AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]).T
"""Columns: i posterior, j inferior, k right (ImageOrientationPatient 0\\1\\0\\0\\0\\-1)."""
CORONAL_AXES = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]).T
AXIAL_AXES = np.array([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).T


@dataclass(frozen=True)
class GridSpec:
    """One stack of parallel slices: world affine, shape and slice thickness (<= slice spacing)."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    thickness: float

    @property
    def pixel_spacing(self) -> float:
        return float(np.linalg.norm(self.affine[:3, 0]))

    @property
    def slice_spacing(self) -> float:
        return float(np.linalg.norm(self.affine[:3, 2]))


@dataclass(frozen=True)
class SeriesPlan:
    """Everything needed to render and write one series."""

    name: str
    weighting: str
    protocol: SeriesProtocol
    sequence: Sequence
    grids: tuple[GridSpec, ...]
    snr: float
    max_value: float
    acquired_resolution: float

    def acquisition(self) -> dict[str, Any]:
        """Acquisition parameters as recorded in truth.json."""
        grid = self.grids[0]
        return {
            "series_number": self.protocol.number,
            "series_description": self.protocol.description,
            "series_uid": self.protocol.series_uid,
            "image_type": list(self.protocol.image_type),
            "weighting": self.weighting,
            "sequence": self.sequence.kind,
            "repetition_time_ms": round(self.sequence.tr, 2),
            "echo_time_ms": round(self.sequence.te, 2),
            "inversion_time_ms": None if self.sequence.ti is None else round(self.sequence.ti, 2),
            "flip_angle_deg": round(self.sequence.flip_angle, 2),
            "echo_train_length": self.sequence.echo_train_length,
            "fat_suppression": round(self.sequence.fat_suppression, 3),
            "field_strength_t": self.sequence.field_strength,
            "pixel_spacing_mm": round(grid.pixel_spacing, 4),
            "matrix": [grid.shape[0], grid.shape[1]],
            "slices": [g.shape[2] for g in self.grids],
            "slice_thickness_mm": round(grid.thickness, 3),
            "spacing_between_slices_mm": round(grid.slice_spacing, 3),
            "acquired_resolution_mm": round(self.acquired_resolution, 3),
            "snr": round(self.snr, 2),
            "affines_ras": [np.round(g.affine, 6).tolist() for g in self.grids],
        }


def rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    ax, ay, az = (math.radians(a) for a in angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _small_rotation(rng: np.random.Generator, limits: tuple[float, ...]) -> np.ndarray:
    return rotation(tuple(float(rng.uniform(-m, m)) for m in limits))  # type: ignore[arg-type]


def sample_pose(rng: np.random.Generator, planning: PlanningSettings, anatomy: Anatomy) -> np.ndarray:
    """4x4 rigid transform from the anatomy frame to world RAS (patient position in the scanner)."""
    rot = _small_rotation(rng, planning.pose_rotation_deg)
    offset = planning.pose_offset
    l3 = anatomy.vertebra("L3")
    target = np.array([offset.lr.draw(rng), offset.ap.draw(rng), offset.si.draw(rng)])
    centre = np.array([0.0, l3.frame.y, l3.frame.z])
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = target - rot @ centre
    return pose


def _grid(
    axes: np.ndarray, centre: np.ndarray, spacing: tuple[float, float, float], shape: tuple[int, int, int]
) -> np.ndarray:
    """Affine of a grid whose centre voxel position is ``centre`` (axes and centre in one frame)."""
    affine = np.eye(4)
    affine[:3, :3] = axes * np.array(spacing)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    return affine


def _in_plane(rng: np.random.Generator, section: AcquiredSeriesSettings) -> tuple[float, int]:
    """(pixel spacing, matrix): a matrix from ``matrix`` (a list or ``{matrix: weight}``) over a field of
    view drawn from ``fov``, so spacing varies like on real scanners."""
    matrix = int(section.matrix.pick(rng))
    return section.fov.draw(rng) / matrix, matrix


@dataclass(frozen=True)
class _Slices:
    count: int
    thickness: float
    spacing: float


def _sagittal_slices(rng: np.random.Generator, section: SagittalSeriesSettings) -> _Slices:
    thickness = section.slice_thickness.draw(rng)
    gap = section.slice_gap.draw(rng)
    return _Slices(count=section.n_slices.draw(rng), thickness=thickness, spacing=thickness * (1.0 + gap))


class Planner:
    """Plans all series of one study from the config, the anatomy and the patient's pose."""

    def __init__(
        self,
        config: SynthSettings,
        anatomy: Anatomy,
        *,
        seed: int,
        patient: PatientStudy,
        field_strength: float,
    ) -> None:
        self.config = config
        self.anatomy = anatomy
        self.seed = seed
        self.patient = patient
        self.field_strength = field_strength
        self.planning = config.planning
        self.pose = sample_pose(self._rng("pose"), self.planning, anatomy)
        self.pose_inverse = np.linalg.inv(self.pose)
        self.manufacturer = config.scanner.manufacturer
        self.model_name = config.scanner.model_name
        self._plans: dict[str, SeriesPlan] = {}

    def _rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, 3, SERIES_NAMES.index(name) if name in SERIES_NAMES else 99])

    def plan(self, name: str) -> SeriesPlan:
        """The plan of series ``name`` (one of :data:`SERIES_NAMES`), computed once."""
        if name not in self._plans:
            self._plans[name] = self._make(name)
        return self._plans[name]

    # --------------------------------------------------------------------------------------------

    def _make(self, name: str) -> SeriesPlan:
        rng = self._rng(name)
        section = self.config.series.of(name)
        if name == "derived":
            t1 = self.plan("t1")
            protocol = self._protocol(section, t1.sequence, kind="derived")
            return SeriesPlan(
                name=name, weighting=t1.weighting, protocol=protocol, sequence=t1.sequence, grids=t1.grids,
                snr=t1.snr, max_value=t1.max_value, acquired_resolution=t1.acquired_resolution,
            )
        assert isinstance(section, AcquiredSeriesSettings)
        sequence = self._sequence(rng, section)
        if isinstance(section, T2SeriesSettings):
            grids = (self._sagittal_like_t1(rng, section),)
        elif isinstance(section, SagittalSeriesSettings):
            grids = (self._sagittal(rng, section, self._sagittal_centre(rng), None),)
        elif isinstance(section, AxialSeriesSettings):
            grids = self._axial(rng, section)
        elif isinstance(section, LocalizerSettings):
            grids = self._localizer(rng, section)
        else:
            grids = (self._sagittal_like_t1(rng, section),)
        return SeriesPlan(
            name=name,
            weighting=section.weighting,
            protocol=self._protocol(section, sequence, kind=name),
            sequence=sequence,
            grids=grids,
            snr=section.snr.draw(rng),
            max_value=section.max_value.draw(rng),
            acquired_resolution=section.acquired_resolution.draw(rng),
        )

    def _sequence(self, rng: np.random.Generator, section: AcquiredSeriesSettings) -> Sequence:
        ti = None
        if section.kind == "ir" and section.ti is not None:
            ti = min(section.ti, key=lambda pair: abs(pair[0] - self.field_strength))[1].draw(rng)
        return Sequence(
            kind=section.kind,
            tr=section.tr.draw(rng),
            te=section.te.draw(rng),
            ti=ti,
            flip_angle=section.flip_angle.draw(rng),
            echo_train_length=1 if section.echo_train_length is None else section.echo_train_length.draw(rng),
            fat_suppression=0.0 if section.fat_suppression is None else section.fat_suppression.draw(rng),
            field_strength=self.field_strength,
        )

    def _protocol(self, section: SeriesProtocolSettings, sequence: Sequence, *, kind: str) -> SeriesProtocol:
        number = section.number
        scanning: tuple[str, ...] = ("SE",)
        variant: tuple[str, ...] = ("SK", "SP")
        options: tuple[str, ...] = ("",)
        image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
        if sequence.kind == "ir":
            scanning, variant = ("SE", "IR"), ("SK", "SP", "MP")
        elif sequence.kind == "gre":
            scanning, variant = ("GR",), ("SP",)
        if sequence.fat_suppression > 0:
            options = ("FS",)
        if kind == "localizer":
            image_type = ("ORIGINAL", "PRIMARY", "LOCALIZER")
        elif kind == "derived":
            image_type = ("DERIVED", "SECONDARY", "MPR")
        return SeriesProtocol(
            description=section.description,
            number=number,
            repetition_time=round(sequence.tr, 2),
            echo_time=round(sequence.te, 2),
            inversion_time=None if sequence.ti is None else round(sequence.ti, 2),
            flip_angle=round(sequence.flip_angle, 1),
            scanning_sequence=scanning,
            sequence_variant=variant,
            scan_options=options,
            echo_train_length=sequence.echo_train_length,
            field_strength=sequence.field_strength,
            image_type=image_type,
            manufacturer=self.manufacturer,
            model_name=self.model_name,
            series_uid=str(deterministic_uid(self.patient.study_uid, "series", number)),
        )

    # Geometry -----------------------------------------------------------------------------------

    def _sagittal_centre(self, rng: np.random.Generator) -> np.ndarray:
        """FOV centre of the sagittal series (anatomy frame): behind the L3 posterior wall, with offsets."""
        l3 = self.anatomy.vertebra("L3")
        offset = self.planning.fov_offset
        wall = l3.frame.point(l3.half_ap, 0.0)
        return np.array([offset.lr.draw(rng), wall[1] - offset.ap.draw(rng), wall[2] + offset.si.draw(rng)])

    def _sagittal(
        self, rng: np.random.Generator, section: SagittalSeriesSettings, centre: np.ndarray, slices: _Slices | None
    ) -> GridSpec:
        axes = _small_rotation(rng, self.planning.obliquity_deg) @ SAGITTAL_AXES
        return self._sagittal_with(rng, section, centre, axes, slices)

    def _sagittal_with(
        self,
        rng: np.random.Generator,
        section: AcquiredSeriesSettings,
        centre: np.ndarray,
        axes: np.ndarray,
        slices: _Slices | None,
        in_plane: tuple[float, int] | None = None,
    ) -> GridSpec:
        if slices is None:
            assert isinstance(section, SagittalSeriesSettings)
            slices = _sagittal_slices(rng, section)
        if in_plane is None:
            in_plane = _in_plane(rng, section)
        spacing, matrix = in_plane
        shape = (matrix, matrix, slices.count)
        centre = self._fit_sacrum(axes, centre, spacing, matrix)
        affine = _grid(axes, centre, (spacing, spacing, slices.spacing), shape)
        return GridSpec(affine=self.pose @ affine, shape=shape, thickness=slices.thickness)

    def _fit_sacrum(self, axes: np.ndarray, centre: np.ndarray, spacing: float, matrix: int) -> np.ndarray:
        """Shift the FOV along its column axis so the sacrum is in it (or, for that variant, just below it)."""
        margin = self.planning.sacrum_margin
        down = axes[:, 1]
        half = spacing * (matrix - 1) / 2.0
        by_name = {v.name: v for v in self.anatomy.vertebrae}
        if self.anatomy.variant.sacrum_in_fov:
            s2 = by_name["S2"].frame.point(0.0, 0.0)
            below = float((s2 - centre) @ down) + margin - half
            return centre + down * max(below, 0.0)
        s1 = self.anatomy.s1
        highest = min(float((p - centre) @ down) for p in _body_corners(s1))
        above = highest - margin - half
        return centre + down * min(above, 0.0) if above < 0 else centre

    def _sagittal_like_t1(self, rng: np.random.Generator, section: AcquiredSeriesSettings) -> GridSpec:
        """Same planning as T1 (same frame of reference), with the series' own matrix or slice stack."""
        t1 = self.plan("t1").grids[0]
        t1_axes = self.pose_inverse[:3, :3] @ t1.affine[:3, :3]
        t1_spacing = t1.pixel_spacing
        axes = t1_axes / np.linalg.norm(t1_axes, axis=0)
        centre = (self.pose_inverse @ t1.affine @ np.append((np.array(t1.shape) - 1) / 2.0, 1.0))[:3]
        same = _Slices(count=t1.shape[2], thickness=t1.thickness, spacing=t1.slice_spacing)
        if isinstance(section, T2SeriesSettings):
            slices = same if rng.random() < section.same_slices else None
            in_plane = (t1_spacing, t1.shape[0]) if rng.random() < section.same_in_plane else None
        else:
            slices, in_plane = same, None
        return self._sagittal_with(rng, section, centre, axes, slices, in_plane)

    def _axial(self, rng: np.random.Generator, section: AxialSeriesSettings) -> tuple[GridSpec, ...]:
        wanted = section.discs
        discs = {d.name: d for d in self.anatomy.labelled_discs()}
        spacing, matrix = _in_plane(rng, section)
        thickness = section.slice_thickness.draw(rng)
        step = thickness * (1.0 + section.slice_gap.draw(rng))
        count = section.slices_per_disc.draw(rng)
        limits = self.planning.obliquity_deg
        grids = []
        for name in wanted:
            disc = discs.get(name)
            if disc is None:
                continue
            ay, az = disc.frame.axis
            normal = np.array([0.0, ay, az])
            across = np.array([-1.0, 0.0, 0.0])
            axes = np.stack([across, np.cross(normal, across), normal], axis=1)
            axes = _small_rotation(rng, tuple(m / 2 for m in limits)) @ axes
            centre = disc.frame.point(disc.half_ap + 12.0, 0.0)
            affine = _grid(axes, centre, (spacing, spacing, step), (matrix, matrix, count))
            grids.append(GridSpec(affine=self.pose @ affine, shape=(matrix, matrix, count), thickness=thickness))
        if not grids:
            raise ValueError(f"none of the axial discs {list(wanted)!r} exists in this anatomy")
        return tuple(grids)

    def _localizer(self, rng: np.random.Generator, section: LocalizerSettings) -> tuple[GridSpec, ...]:
        """One sagittal, one coronal and one axial slice, orthogonal to the scanner (not the patient)."""
        spacing, matrix = _in_plane(rng, section)
        thickness = section.slice_thickness.draw(rng)
        l3 = self.anatomy.vertebra("L3")
        centre = (self.pose @ np.append(l3.frame.point(0.0, 0.0), 1.0))[:3]
        grids = []
        for axes in (SAGITTAL_AXES, CORONAL_AXES, AXIAL_AXES):
            world = _grid(axes, centre, (spacing, spacing, thickness), (matrix, matrix, 1))
            grids.append(GridSpec(affine=world, shape=(matrix, matrix, 1), thickness=thickness))
        return tuple(grids)


def _body_corners(vertebra: Vertebra) -> list[np.ndarray]:
    a, h = vertebra.half_ap, vertebra.half_height
    return [vertebra.frame.point(u, v) for u in (-a, a) for v in (-h, h)]
