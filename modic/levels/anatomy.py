"""From segmentation probabilities to named anatomy and endplate regions (this stage's entry point)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from modic.io.volume import Volume
from modic.levels.endplates import LATERAL, EndplateRegion, body_frame, endplate_band, reference_region
from modic.levels.instances import (
    Component,
    class_labels,
    instances_from_settings,
    is_single_slice,
    voxel_size,
)
from modic.levels.labelling import Naming, check_body_sizes, name_levels
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST, endplate_parts, level_endplates
from modic.results import Flag
from modic.settings import DepthMode, EndplateSettings, LevelsSettings


@dataclass(frozen=True)
class Structure:
    """A named vertebral body or disc."""

    name: str
    kind: str
    label: int
    size: float
    centroid_ras: tuple[float, float, float]
    s1_fraction: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "size": round(self.size, 1),
            "centroid_ras_mm": [round(v, 2) for v in self.centroid_ras],
        }
        if self.s1_fraction is not None:
            data["s1_fraction"] = round(self.s1_fraction, 3)
        return data


@dataclass
class SpineAnatomy:
    """Everything downstream stages need about the anatomy, on the T1 (reference) grid.

    Label maps:
        ``semantic``: network classes (0 background, 1 vertebral body, 2 disc, 3 S1).
        ``vertebra_map``: named bodies, value = position counted from S1 plus one (S1=1, L5=2, ...).
        ``disc_map``: named discs, value = position counted from L5-S1 plus one (L5-S1=1, L4-L5=2, ...).
        ``endplate_map``: graded endplate bands, values = ``EndplateRegion.label``.
        ``reference_map``: reference marrow regions, values = ``EndplateRegion.reference_label``.
    """

    geometry: Volume
    semantic: np.ndarray
    vertebra_map: np.ndarray
    disc_map: np.ndarray
    endplate_map: np.ndarray
    reference_map: np.ndarray
    vertebrae: list[Structure]
    discs: list[Structure]
    endplates: list[EndplateRegion]
    flags: list[Flag] = field(default_factory=list)
    single_slice: bool = False
    spine_axes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def slice_axis(self) -> int:
        """Array axis that runs left-right (across sagittal slices)."""
        return self.geometry.lateral_axis

    @property
    def size_unit(self) -> str:
        return "mm2" if self.single_slice else "mm3"

    def endplate(self, name: str) -> EndplateRegion | None:
        return next((e for e in self.endplates if e.name == name), None)


LEVEL_WARNING_CODES = frozenset(
    {
        "no_vertebrae",
        "s1_not_found",
        "s1_ambiguous",
        "s1_small",
        "merged_bodies_suspected",
        "possible_missed_vertebra",
        "disc_not_found",
        "transitional_vertebra_suspected",
        "endplate_missing",
    }
)
"""Warning codes that say a level may be misnamed or a structure is missing (evaluations count them)."""


def level_flags(naming: Naming, levels: LevelsSettings, *, split_bodies: int, single_slice: bool) -> list[Flag]:
    """Every flag about the level names: the naming's own, oversized bodies, and bodies split apart.

    ``modic analyze`` and ``modic evaluate seg`` both call this, so the evaluation
    measures the warnings users see.
    """
    maximum = levels.max_vertebra(single_slice=single_slice)
    flags = naming.flags + check_body_sizes(naming.vertebrae, maximum=maximum, unit="mm2" if single_slice else "mm3")
    if split_bodies:
        flags.append(
            Flag(
                "merged_bodies_split",
                f"{split_bodies} extra vertebral bod{'y was' if split_bodies == 1 else 'ies were'} "
                "separated from regions spanning several bodies (a disc was not segmented); check the level names",
                severity="info",
            )
        )
    return flags


def build_anatomy(
    probabilities: np.ndarray,
    geometry: Volume,
    *,
    levels: LevelsSettings,
    endplates: EndplateSettings,
) -> SpineAnatomy:
    """Instances, names, flags and endplate regions from class probabilities on ``geometry``'s grid.

    Args:
        probabilities: ``(C, I, J, K)`` class probabilities (see :mod:`modic.segmentation.classes`).
        geometry: the volume whose grid the probabilities are on (the T1 when present).
        levels: the level settings (``levels`` in ``configs/analysis.yaml``).
        endplates: the endplate settings (``endplates`` there).
    """
    single = is_single_slice(geometry)
    semantic = class_labels(probabilities)
    instances = instances_from_settings(probabilities, geometry, levels, semantic=semantic)
    naming = name_levels(instances.bones, instances.discs, levels)
    flags = level_flags(naming, levels, split_bodies=instances.split_bodies, single_slice=single)

    vertebrae = []
    vertebra_values = {}
    for name, component in naming.vertebrae.items():
        value = VERTEBRAE_CAUDAL_FIRST.index(name) + 1 if name in VERTEBRAE_CAUDAL_FIRST else 0
        vertebra_values[component.label] = value
        vertebrae.append(_structure(name, "vertebra", value, component, s1=True))
    discs = []
    disc_values = {}
    for name, component in naming.discs.items():
        upper = name.split("-")[0]
        value = VERTEBRAE_CAUDAL_FIRST.index(upper) if upper in VERTEBRAE_CAUDAL_FIRST else 0
        disc_values[component.label] = value
        discs.append(_structure(name, "disc", value, component, s1=False))
    vertebra_map = _relabel(instances.bone_map, vertebra_values)
    disc_map = _relabel(instances.disc_map, disc_values)

    endplate_map = np.zeros(geometry.shape, dtype=np.uint8)
    reference_map = np.zeros(geometry.shape, dtype=np.uint8)
    spine_axes: dict[str, np.ndarray] = {}
    regions = _endplate_regions(
        graded=levels.graded,
        naming_vertebrae=naming.vertebrae,
        naming_discs=naming.discs,
        instances_bone=instances.bone_map,
        instances_disc=instances.disc_map,
        geometry=geometry,
        settings=endplates,
        endplate_map=endplate_map,
        reference_map=reference_map,
        flags=flags,
        spine_axes=spine_axes,
    )
    return SpineAnatomy(
        geometry=geometry,
        semantic=semantic,
        vertebra_map=vertebra_map,
        disc_map=disc_map,
        endplate_map=endplate_map,
        reference_map=reference_map,
        vertebrae=sorted(vertebrae, key=lambda s: s.centroid_ras[2]),
        discs=sorted(discs, key=lambda s: s.centroid_ras[2]),
        endplates=regions,
        flags=flags,
        single_slice=single,
        spine_axes=spine_axes,
    )


def _relabel(instance_map: np.ndarray, values: Mapping[int, int]) -> np.ndarray:
    """``instance_map`` with each instance label replaced by its value in ``values`` (others become 0)."""
    table = np.zeros(int(instance_map.max()) + 1, dtype=np.uint16)
    for label, value in values.items():
        table[label] = value
    return table[instance_map]


def _structure(name: str, kind: str, value: int, component: Component, *, s1: bool) -> Structure:
    return Structure(
        name=name,
        kind=kind,
        label=value,
        size=component.size,
        centroid_ras=tuple(float(v) for v in component.centroid_ras),  # type: ignore[arg-type]
        s1_fraction=component.s1_fraction if s1 else None,
    )


def _endplate_regions(
    *,
    graded: Sequence[str],
    naming_vertebrae: Mapping[str, Component],
    naming_discs: Mapping[str, Component],
    instances_bone: np.ndarray,
    instances_disc: np.ndarray,
    geometry: Volume,
    settings: EndplateSettings,
    endplate_map: np.ndarray,
    reference_map: np.ndarray,
    flags: list[Flag],
    spine_axes: dict[str, np.ndarray],
) -> list[EndplateRegion]:
    regions: list[EndplateRegion] = []
    reference_labels: dict[str, int] = {}
    frames = {}
    boxes = ndimage.find_objects(instances_bone)
    unit = voxel_size(geometry)
    label = 0
    for level in graded:
        for endplate in level_endplates(level):
            label += 1
            vertebra, side = endplate_parts(endplate)
            component = naming_vertebrae.get(vertebra)
            if component is None:
                flags.append(Flag("endplate_missing", f"{endplate}: vertebra {vertebra} was not found; not graded"))
                continue
            window = _window(boxes[component.label - 1], geometry, settings)
            sub = _sub_volume(geometry, window)
            body = _lateral_core(instances_bone[window] == component.label, sub,
                                 float(settings.max_lateral_fraction))
            disc_component = naming_discs.get(level)
            disc = instances_disc[window] == disc_component.label if disc_component is not None else None
            if vertebra not in frames:
                spine_axes[vertebra] = _spine_axis(vertebra, naming_vertebrae, component)
                frames[vertebra] = body_frame(body, sub, spine_axes[vertebra])
            frame = frames[vertebra]
            band, depth = endplate_band(body, disc, frame, sub, side=side, settings=settings)
            if vertebra not in reference_labels:
                reference_labels[vertebra] = len(reference_labels) + 1
                reference = reference_region(body, frame, sub, settings=settings)
                reference_map[window][reference] = reference_labels[vertebra]
            # A vertebra's band and reference regions lie inside its window: count them there.
            endplate_map[window][band & (endplate_map[window] == 0)] = label
            n_band = int((endplate_map[window] == label).sum())
            n_reference = int((reference_map[window] == reference_labels[vertebra]).sum())
            if n_band < int(settings.min_band_voxels) or n_reference < int(settings.min_reference_voxels):
                flags.append(
                    Flag(
                        "small_region",
                        f"{endplate}: the marrow band ({n_band} voxels) or reference ({n_reference} voxels) is too "
                        "small for a reliable reading",
                    )
                )
            regions.append(
                EndplateRegion(
                    name=endplate,
                    vertebra=vertebra,
                    side=side,
                    disc=level if disc_component is not None else None,
                    label=label,
                    reference_label=reference_labels[vertebra],
                    n_voxels=n_band,
                    reference_voxels=n_reference,
                    volume_mm=n_band * unit,
                    depth_mm=depth,
                    body_height_mm=frame.height_mm,
                    from_disc=disc_component is not None,
                )
            )
    return regions


def _lateral_core(body: np.ndarray, volume: Volume, max_fraction: float) -> np.ndarray:
    """``body`` without voxels farther from its mid-sagittal plane than ``max_fraction`` of its anterior-posterior size.

    A lumbar body is about 1.5 times as wide as it is deep, so its half-width is
    about 0.75 of its depth; bone the network labels beyond that in far lateral
    slices (transverse processes, sacral ala, iliac crest) is not the body's
    marrow and would bias its endplate bands.
    """
    index = np.argwhere(body)
    if len(index) == 0:
        return body
    points = volume.world_coordinates(index)
    lateral = points @ LATERAL
    ap_depth = float(np.subtract(*np.percentile(points[:, 1], [98, 2])))
    keep = np.abs(lateral - np.median(lateral)) <= max_fraction * max(ap_depth, 1e-6)
    core = np.zeros_like(body)
    core[tuple(index[keep].T)] = True
    return core


def _spine_axis(vertebra: str, named: Mapping[str, Component], component: Component) -> np.ndarray:
    """Cranio-caudal direction at ``vertebra``: from the body below to the body above (RAS, pointing up)."""
    index = VERTEBRAE_CAUDAL_FIRST.index(vertebra) if vertebra in VERTEBRAE_CAUDAL_FIRST else -1
    below = named.get(VERTEBRAE_CAUDAL_FIRST[index - 1]) if index > 0 else None
    above = named.get(VERTEBRAE_CAUDAL_FIRST[index + 1]) if 0 <= index < len(VERTEBRAE_CAUDAL_FIRST) - 1 else None
    lower = below.centroid_ras if below is not None else component.centroid_ras
    upper = above.centroid_ras if above is not None else component.centroid_ras
    axis = upper - lower
    if np.linalg.norm(axis) < 1e-6:
        return np.array([0.0, 0.0, 1.0])
    return axis / np.linalg.norm(axis)


def _window(box: tuple[slice, ...], geometry: Volume, settings: EndplateSettings) -> tuple[slice, ...]:
    """A body's bounding ``box`` grown by enough millimetres to contain its endplate bands and discs."""
    depth = settings.depth
    reach_mm = 20.0 + (float(depth.value) if depth.mode is DepthMode.MM else 0.0)
    margin = np.ceil(reach_mm / np.asarray(geometry.spacing)).astype(int)
    return tuple(
        slice(int(max(b.start - m, 0)), int(min(b.stop + m, n))) for b, m, n in zip(box, margin, geometry.shape)
    )


def _sub_volume(geometry: Volume, window: tuple[slice, ...]) -> Volume:
    """The geometry of a window of ``geometry`` (affine shifted to the window's origin)."""
    origin = np.array([s.start for s in window], dtype=float)
    affine = geometry.affine.copy()
    affine[:3, 3] = geometry.world_coordinates(origin)[0]
    shape = tuple(s.stop - s.start for s in window)
    return Volume(np.zeros(shape, dtype=np.float32), affine)
