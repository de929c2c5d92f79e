"""Separate the semantic segmentation into vertebral-body and disc instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from modic.arrays import bounding_box
from modic.io.volume import Volume
from modic.segmentation.classes import SegClass
from modic.settings import LevelsSettings


PROBE_INTO_BONE_MM = 2.0
"""How far past the bone cut away around a disc (``disc_separation_mm``) the bodies next to it are looked for."""


@dataclass(frozen=True)
class Component:
    """One connected structure.

    Attributes:
        label: its value in the component map it came from.
        n_voxels: voxel count.
        size: volume in mm^3 (3D) or area in mm^2 (single slice).
        centroid_ijk: voxel-index centroid.
        centroid_ras: RAS mm centroid.
        s1_fraction: share of its bone probability that is S1 (bones only).
        length_mm: its longest extent within the sagittal plane (2nd to 98th
            percentile along the major axis): a disc's antero-posterior length
            (measured for discs only; 0 for bones).
    """

    label: int
    n_voxels: int
    size: float
    centroid_ijk: np.ndarray
    centroid_ras: np.ndarray
    s1_fraction: float = 0.0
    length_mm: float = 0.0

    @property
    def superior_mm(self) -> float:
        """Height of the centroid along the patient's superior axis (RAS z)."""
        return float(self.centroid_ras[2])


@dataclass(frozen=True)
class Instances:
    bone_map: np.ndarray
    disc_map: np.ndarray
    bones: list[Component]
    discs: list[Component]
    single_slice: bool
    split_bodies: int = 0


def is_single_slice(volume: Volume) -> bool:
    return min(volume.shape) == 1


def voxel_size(volume: Volume) -> float:
    """mm^3 per voxel, or mm^2 per pixel for a single slice."""
    spacing = np.asarray(volume.spacing)
    if is_single_slice(volume):
        return float(np.prod(spacing[np.asarray(volume.shape) > 1]))
    return float(np.prod(spacing))


def find_instances(
    probabilities: np.ndarray,
    volume: Volume,
    *,
    min_bone: float,
    min_s1: float,
    min_disc: float,
    disc_separation_mm: float,
    merge_factor: float,
    split_min_fraction: float,
    min_relative_size: float = 0.0,
    max_off_column_mm: float | None = None,
    min_step_fraction: float = 0.0,
    lateral_trim_fraction: float = 0.0,
    semantic: np.ndarray | None = None,
) -> Instances:
    """Bone (vertebral body or S1) and disc instances from class probabilities ``(C, I, J, K)``.

    Discs, slightly dilated, cut the bone mask so touching bodies separate;
    the cut-away bone voxels are then given back to the nearest instance so
    the endplate zone stays part of its body. Bone components below the
    absolute minimum size are dropped. Bodies that stay joined (a disc the
    network missed) are split (:func:`split_merged_bodies`), since a merged
    pair would shift every level name above it; then fragments far smaller
    than the median body are dropped (:func:`_drop_fragments`), so are
    bodies lying off the spinal column (:func:`_drop_off_column`) or beside
    another body at its height (:func:`_drop_side_by_side`), and every
    body and disc loses the sagittal slices at its lateral ends whose
    cross-section is under ``lateral_trim_fraction`` of its largest
    (:func:`trim_lateral_ends`). Work is confined to the bounding box of the
    spine.
    """
    if semantic is None:
        semantic = class_labels(probabilities)
    bone_map = np.zeros(semantic.shape, dtype=np.int32)
    disc_map = np.zeros(semantic.shape, dtype=np.int32)
    box = bounding_box(semantic > 0, margin=2)
    if box is None:
        return Instances(bone_map, disc_map, [], [], is_single_slice(volume))
    sub = semantic[box]
    probs = probabilities[(slice(None), *box)]
    spacing = np.asarray(volume.spacing)
    disc = sub == SegClass.DISC
    bone = np.isin(sub, (SegClass.VERTEBRAL_BODY, SegClass.S1))
    near_disc = ndimage.binary_dilation(disc, structure=_ball(disc_separation_mm, spacing)) if disc.any() else disc
    structure = ndimage.generate_binary_structure(3, 1)
    cores, n_cores = ndimage.label(bone & ~near_disc, structure=structure)

    unit = voxel_size(volume)
    bone_prob = probs[SegClass.VERTEBRAL_BODY] + probs[SegClass.S1]
    s1_mass = ndimage.sum_labels(probs[SegClass.S1], cores, index=np.arange(1, n_cores + 1))
    bone_mass = ndimage.sum_labels(bone_prob, cores, index=np.arange(1, n_cores + 1))
    counts = np.bincount(cores.ravel(), minlength=n_cores + 1)[1:]
    s1_share = s1_mass / np.maximum(bone_mass, 1e-6)
    keep = np.concatenate([[False], counts * unit >= np.where(s1_share >= 0.5, min_s1, min_bone)])
    cores = np.where(keep[cores], cores, 0)
    before = len(np.unique(cores)) - 1
    disc_labels, _ = ndimage.label(disc, structure=structure)
    superior = _superior_axis(volume)
    cores = split_at_enclosed_discs(
        cores,
        disc_labels=disc_labels,
        spacing=spacing,
        superior=superior,
        probe_mm=disc_separation_mm + PROBE_INTO_BONE_MM,
        min_disc_voxels=min_disc / unit,
        min_relative_size=min_relative_size,
        min_part_fraction=split_min_fraction,
    )
    s1_by_label = dict(enumerate(np.concatenate([[0.0], s1_share])))
    cores = split_merged_bodies(
        cores,
        discs=disc,
        s1_share=s1_by_label,
        volume=volume,
        spacing=spacing,
        factor=merge_factor,
        min_part_fraction=split_min_fraction,
    )
    split = len(np.unique(cores)) - 1 - before
    cores = _drop_fragments(cores, min_relative_size=min_relative_size)
    if max_off_column_mm is not None:
        cores = _drop_off_column(
            cores, spacing=spacing, superior=superior, max_distance_mm=max_off_column_mm,
            s1_share=s1_by_label,
        )
    if min_step_fraction > 0:
        cores = _drop_side_by_side(
            cores, bone=bone, spacing=spacing, superior=superior, min_step_fraction=min_step_fraction,
            s1_share=s1_by_label,
        )
    steps = int(np.ceil(disc_separation_mm / max(float(spacing.min()), 1e-6))) + 2
    lateral = volume.lateral_axis
    grown = _grow_into(cores, bone, steps=steps)
    bone_map[box] = trim_lateral_ends(grown, axis=lateral, fraction=lateral_trim_fraction)
    disc_labels = trim_lateral_ends(disc_labels, axis=lateral, fraction=lateral_trim_fraction)
    origin = np.array([b.start for b in box])
    bones = _components(bone_map, volume, unit, s1_probability=probabilities[SegClass.S1],
                        bone_probability=probabilities[SegClass.VERTEBRAL_BODY] + probabilities[SegClass.S1], box=box,
                        origin=origin)

    disc_map[box] = disc_labels
    discs = [
        c for c in _components(disc_map, volume, unit, box=box, origin=origin, lengths=True) if c.size >= min_disc
    ]
    disc_map[box] = np.where(np.isin(disc_labels, [c.label for c in discs]), disc_labels, 0)
    return Instances(
        bone_map=bone_map,
        disc_map=disc_map,
        bones=bones,
        discs=discs,
        single_slice=is_single_slice(volume),
        split_bodies=split,
    )


def trim_lateral_ends(labels: np.ndarray, *, axis: int, fraction: float) -> np.ndarray:
    """``labels`` without the thin slices at either lateral end of each instance (along ``axis``).

    The network segments each sagittal slice on its own, and at the lateral
    edge of a body or disc, where the slice cuts its curved side wall, it
    leaves a thin taper of partial-volume slices. Slices of an instance
    outside the run from its first to its last slice holding at least
    ``fraction`` of its largest cross-section are removed; slices within that
    run are kept whatever their size. ``fraction`` 0, or a map one slice thick
    along ``axis``, leaves ``labels`` unchanged.
    """
    if fraction <= 0 or labels.shape[axis] < 2:
        return labels
    along = np.moveaxis(labels, axis, 0)
    n_labels = int(labels.max())
    areas = np.stack([np.bincount(plane.ravel(), minlength=n_labels + 1) for plane in along], axis=1)
    out = labels.copy()
    out_along = np.moveaxis(out, axis, 0)
    for label in range(1, n_labels + 1):
        area = areas[label]
        if not area.any():
            continue
        kept = np.flatnonzero(area >= fraction * area.max())
        for index in (*range(kept[0]), *range(kept[-1] + 1, len(area))):
            if area[index]:
                plane = out_along[index]
                plane[plane == label] = 0
    return out


def split_at_enclosed_discs(
    cores: np.ndarray,
    *,
    disc_labels: np.ndarray,
    spacing: np.ndarray,
    superior: np.ndarray,
    probe_mm: float,
    min_disc_voxels: float,
    min_relative_size: float,
    min_part_fraction: float,
) -> np.ndarray:
    """Cut every body instance that lies on both sides of a segmented disc along that disc's plane.

    Bone bridging around a disc (osteophytes, a thin bony rim the disc
    mask does not cover) keeps two bodies in one instance although the disc
    between them was found; the height test of :func:`split_merged_bodies`
    misses such pairs when the typical height is itself inflated by merges.
    "Both sides": the body voxels within ``probe_mm`` of the disc, split by
    the disc's mid-plane, belong mostly to the same instance above and below
    it. A disc counts when it holds at least ``min_relative_size`` of the
    median disc (so a bright focus inside a body, a vein or oedema, does
    not), and the cut is kept only when both parts hold at least
    ``min_part_fraction`` of the median body. The plane is the disc's own
    mid-plane (its direction of least spread), so tilted lumbosacral discs
    are cut along their tilt.
    """
    disc_sizes = np.bincount(disc_labels.ravel())[1:]
    body_sizes = np.bincount(cores.ravel())[1:]
    if not len(disc_sizes) or np.count_nonzero(body_sizes) < 2:
        return cores
    formed = disc_sizes[disc_sizes >= min_disc_voxels]
    if not len(formed):
        return cores
    least = max(min_disc_voxels, min_relative_size * float(np.median(formed)))
    typical_body = float(np.median(body_sizes[body_sizes > 0]))
    flat = np.asarray(cores.shape) == 1
    reach = _ball(probe_mm, spacing)
    margin = np.asarray(reach.shape) // 2
    out = cores.copy()
    next_label = int(cores.max()) + 1
    for label, box in _label_boxes(disc_labels).items():
        if disc_sizes[label - 1] < least:
            continue
        points = (np.argwhere(disc_labels[box] == label) + np.array([b.start for b in box])) * spacing
        centre = points.mean(axis=0)
        normal = np.linalg.eigh(np.cov(points.T) + np.diag(np.where(flat, 1e9, 0.0)))[1][:, 0]
        normal = normal if normal @ superior >= 0 else -normal
        around = tuple(
            slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, out.shape)
        )
        near = ndimage.binary_dilation(disc_labels[around] == label, structure=reach) & (out[around] > 0)
        index = np.argwhere(near) + np.array([a.start for a in around])
        side = ((index * spacing - centre) @ normal) > 0
        body = _enclosing_label(out[tuple(index.T)], side)
        if body is None:
            continue
        members = np.argwhere(out == body)
        upper = ((members * spacing - centre) @ normal) > 0
        if min(upper.sum(), (~upper).sum()) < min_part_fraction * typical_body:
            continue
        out[tuple(members[upper].T)] = next_label
        next_label += 1
    return out


def _enclosing_label(labels: np.ndarray, upper: np.ndarray) -> int | None:
    """The instance holding most body voxels next to a disc on both of its sides, or None when they differ."""
    if not upper.any() or upper.all():
        return None
    above = np.bincount(labels[upper]).argmax()
    below = np.bincount(labels[~upper]).argmax()
    return int(above) if above == below else None


def split_merged_bodies(
    cores: np.ndarray,
    *,
    discs: np.ndarray,
    s1_share: dict[int, float],
    volume: Volume,
    spacing: np.ndarray,
    factor: float,
    min_part_fraction: float,
) -> np.ndarray:
    """Split vertebral-body instances much taller than the typical one into separate bodies.

    A component whose cranio-caudal extent exceeds ``factor`` times the
    median body extent ``h`` holds ``n = round((extent + d) / (h + d))``
    bodies, ``d`` being the median disc height (measured on the disc mask,
    or ``0.3 h`` without discs). It is cut at the ``n - 1``
    narrowest cross-sections (the disc spaces) searched around the equal
    divisions of its extent. A cut is kept only when every part holds at
    least ``min_part_fraction`` of the median body volume: a tall component
    whose extra height is a thin appendage (a pedicle, a mislabelled lateral
    structure) is one body, and cutting off a sliver would invent a vertebra
    and shift every name above it. S1 instances are left alone (the sacrum
    is legitimately tall).
    """
    boxes = _label_boxes(cores)
    labels = list(boxes)
    if len(labels) < 3:
        return cores
    superior = _superior_axis(volume)
    positions = {}
    for label, box in boxes.items():
        index = np.argwhere(cores[box] == label) + np.array([b.start for b in box])
        positions[label] = (index, (index * spacing) @ superior)
    extents = {
        label: float(np.percentile(t, 97) - np.percentile(t, 3)) for label, (_, t) in positions.items()
    }
    typical = float(np.median(list(extents.values())))
    typical_count = float(np.median([len(index) for index, _ in positions.values()]))
    disc_height = _median_extent(discs, spacing, superior) or 0.3 * typical
    out = cores.copy()
    next_label = max(labels) + 1
    for label in labels:
        if s1_share.get(label, 0.0) >= 0.5 or extents[label] <= factor * typical:
            continue
        index, t = positions[label]
        n_bodies = int(round((extents[label] + disc_height) / (typical + disc_height)))
        if n_bodies < 2:
            continue
        cuts = _cut_positions(t, n_bodies=n_bodies, typical=typical)
        part = np.searchsorted(cuts, t)
        if np.bincount(part, minlength=len(cuts) + 1).min() < min_part_fraction * typical_count:
            continue
        for number in range(1, len(cuts) + 1):
            out[tuple(index[part == number].T)] = next_label
            next_label += 1
    return out


def _drop_fragments(cores: np.ndarray, *, min_relative_size: float) -> np.ndarray:
    """``cores`` without components smaller than ``min_relative_size`` of the median one (with three or more).

    A fragment far smaller than the typical body (a piece of posterior element,
    of the pelvis or of a mislabelled disc) is not a vertebra: counted, it would
    shift every level name above it. Fragments must not set the typical size
    themselves, so the median is taken again over what remains until nothing
    more is dropped (many pelvic pieces otherwise pull it down far enough to
    keep the larger ones). Applied after :func:`split_merged_bodies`, whose
    typical body size it does not change.
    """
    counts = np.bincount(cores.ravel())
    present = np.flatnonzero(counts[1:]) + 1
    kept = present
    while len(kept) >= 3:
        bodies = kept[counts[kept] >= min_relative_size * np.median(counts[kept])]
        if len(bodies) == len(kept):
            break
        kept = bodies
    fragments = np.setdiff1d(present, kept)
    return np.where(np.isin(cores, fragments), 0, cores) if len(fragments) else cores


def _drop_off_column(
    cores: np.ndarray,
    *,
    spacing: np.ndarray,
    superior: np.ndarray,
    max_distance_mm: float,
    s1_share: dict[int, float],
) -> np.ndarray:
    """``cores`` without bodies whose centre lies more than ``max_distance_mm`` off the spinal column.

    Vertebral bodies are stacked along a smooth curve; a bone-like blob in
    front of or behind it (bowel, a vessel, a piece of the pelvis or of the
    abdominal wall) is not a vertebra, but sorted by height it would be named
    one and shift the names above it. The column is a quadratic (a line with
    four bodies) of the position across the spine against the height, fitted
    to all body centres; the body farthest from it is dropped while it lies
    beyond ``max_distance_mm``, and the fit repeated, as long as four bodies
    remain. S1 (``s1_share`` at least 0.5) is never dropped: the sacrum tilts
    away from the lumbar curve.
    """
    centres = _centres_mm(cores, spacing)
    if len(centres) < 4:
        return cores
    dropped: list[int] = []
    kept = list(centres)
    while len(kept) >= 4:
        distances = _distances_to_column([centres[k] for k in kept], [centres[k] for k in kept], superior)
        candidates = [i for i, k in enumerate(kept) if s1_share.get(k, 0.0) < 0.5]
        if not candidates:
            break
        worst = max(candidates, key=lambda i: distances[i])
        if distances[worst] <= max_distance_mm:
            break
        dropped.append(kept.pop(worst))
    return np.where(np.isin(cores, dropped), 0, cores) if dropped else cores


def _drop_side_by_side(
    cores: np.ndarray,
    *,
    bone: np.ndarray,
    spacing: np.ndarray,
    superior: np.ndarray,
    min_step_fraction: float,
    s1_share: dict[int, float],
) -> np.ndarray:
    """``cores`` without bodies that lie beside another body instead of above or below it.

    A spinal column holds one vertebral body per height. Two bodies whose
    centres differ in height by less than ``min_step_fraction`` of the median
    step between bodies neighbouring in height lie side by side: one of them is
    something else (bowel or a vessel in the outer sagittal slices, a piece of
    posterior element behind a body) and, counted, it would shift every name
    above it; or both are pieces of one body that the network cut in two. Of
    such a pair the body farther from the column through the other bodies
    (:func:`_distances_to_column`; with fewer than three other bodies to fit,
    the smaller one) goes: merged into the other when the ``bone`` mask joins
    the two within the heights they span (one body in two pieces, cut apart
    by the bone removed around a disc speck or by a split), dropped otherwise.
    Pairs with S1 (``s1_share`` at least 0.5) are left alone: with a steep
    sacral slope S1 sits partly beside L5.
    """
    centres = _centres_mm(cores, spacing)
    if len(centres) < 3:
        return cores
    sizes = np.bincount(cores.ravel())
    dropped: set[int] = set()
    merged: dict[int, int] = {}
    while True:
        kept = sorted((k for k in centres if k not in dropped), key=lambda k: float(centres[k] @ superior))
        if len(kept) < 3:
            break
        steps = np.diff([float(centres[k] @ superior) for k in kept])
        close = min_step_fraction * float(np.median(steps))
        pair = next(
            (
                (kept[i], kept[i + 1]) for i in np.argsort(steps)
                if steps[i] < close and max(s1_share.get(kept[i], 0.0), s1_share.get(kept[i + 1], 0.0)) < 0.5
            ),
            None,
        )
        if pair is None:
            break
        others = [centres[k] for k in kept if k not in pair]
        if len(others) >= 3:
            distances = _distances_to_column(others, [centres[k] for k in pair], superior)
            gone = pair[int(np.argmax(distances))]
        else:
            gone = min(pair, key=lambda k: sizes[k])
        stays = pair[0] if gone == pair[1] else pair[1]
        dropped.add(gone)
        if _joined_at_their_height(cores, bone, gone, stays, spacing=spacing, superior=superior):
            merged[gone] = stays
    if not dropped:
        return cores
    table = np.arange(int(cores.max()) + 1)
    for label in dropped:
        table[label] = 0
    for label, into in merged.items():
        while into in merged:  # merged into a piece that itself went later
            into = merged[into]
        table[label] = 0 if into in dropped else into
    return table[cores]


def _joined_at_their_height(
    cores: np.ndarray, bone: np.ndarray, label: int, other: int, *, spacing: np.ndarray, superior: np.ndarray
) -> bool:
    """Whether ``bone`` connects cores ``label`` and ``other`` through voxels within the heights the two span."""
    pair = np.isin(cores, (label, other))
    box = bounding_box(pair)
    if box is None:
        return False
    index = np.indices(pair[box].shape).reshape(3, -1).T + np.array([b.start for b in box])
    heights = ((index * spacing) @ superior).reshape(pair[box].shape)
    span = heights[pair[box]]
    slab = bone[box] & (heights >= span.min()) & (heights <= span.max())
    joined, _ = ndimage.label(slab)
    return bool(np.intersect1d(joined[cores[box] == label], joined[cores[box] == other]).any())


def _centres_mm(cores: np.ndarray, spacing: np.ndarray) -> dict[int, np.ndarray]:
    """Centre (voxel index scaled by ``spacing``, mm) of every labelled component of ``cores``."""
    labels = [int(v) for v in np.unique(cores) if v]
    index = ndimage.center_of_mass(np.ones(cores.shape), cores, labels) if labels else []
    return {label: np.asarray(c) * spacing for label, c in zip(labels, index)}


def _distances_to_column(
    fitted: list[np.ndarray], queried: list[np.ndarray], superior: np.ndarray
) -> np.ndarray:
    """Distance (mm) of each ``queried`` centre from the spinal column through the ``fitted`` centres.

    The column is the position across the spine as a quadratic in height (a
    line through fewer than five centres), fitted by least squares; the curve
    follows lordosis to within a few millimetres.
    """
    def height_and_across(points: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(points, dtype=float)
        heights = array @ superior
        return heights, array - heights[:, None] * superior[None, :]

    heights, across = height_and_across(fitted)
    degree = 2 if len(fitted) >= 5 else 1
    mean = heights.mean()
    coefficients, *_ = np.linalg.lstsq(np.vander(heights - mean, degree + 1), across, rcond=None)
    query_heights, query_across = height_and_across(queried)
    return np.linalg.norm(query_across - np.vander(query_heights - mean, degree + 1) @ coefficients, axis=1)


def _median_extent(mask: np.ndarray, spacing: np.ndarray, superior: np.ndarray) -> float | None:
    """Median cranio-caudal extent (mm) of the connected components of ``mask``."""
    labels, _ = ndimage.label(mask)
    extents = []
    for label, box in _label_boxes(labels).items():
        t = ((np.argwhere(labels[box] == label) + np.array([b.start for b in box])) * spacing) @ superior
        if t.size >= 10:
            extents.append(float(np.percentile(t, 95) - np.percentile(t, 5)))
    return float(np.median(extents)) if extents else None


def _cut_positions(t: np.ndarray, *, n_bodies: int, typical: float, bin_mm: float = 0.5) -> np.ndarray:
    """Heights at which to cut a column of ``n_bodies`` bodies: the thinnest cross-sections near equal divisions."""
    low, high = np.percentile(t, [1, 99])
    edges = np.arange(low, high + bin_mm, bin_mm)
    profile = ndimage.uniform_filter1d(np.histogram(t, bins=edges)[0].astype(float), size=3)
    centres = (edges[:-1] + edges[1:]) / 2
    cuts = []
    for j in range(1, n_bodies):
        target = low + j * (high - low) / n_bodies
        window = np.abs(centres - target) <= 0.3 * typical
        if window.any():
            candidates = np.flatnonzero(window)
            cuts.append(float(centres[candidates[np.argmin(profile[candidates])]]))
        else:
            cuts.append(float(target))
    return np.sort(np.asarray(cuts))


def _superior_axis(volume: Volume) -> np.ndarray:
    """Unit vector in voxel-index space (scaled by spacing) pointing to the patient's head."""
    direction = volume.affine[2, :3] / np.asarray(volume.spacing)
    return direction / max(np.linalg.norm(direction), 1e-9)


def instances_from_settings(
    probabilities: np.ndarray,
    volume: Volume,
    levels: LevelsSettings,
    *,
    semantic: np.ndarray | None = None,
) -> Instances:
    """:func:`find_instances` with the thresholds of the level settings (``levels`` in ``configs/analysis.yaml``).

    Area thresholds apply to single slices, volume thresholds to 3D series.
    """
    single = is_single_slice(volume)
    return find_instances(
        probabilities,
        volume,
        min_bone=levels.min_vertebra(single_slice=single),
        min_s1=levels.min_s1(single_slice=single),
        min_disc=levels.min_disc(single_slice=single),
        disc_separation_mm=float(levels.disc_separation_mm),
        merge_factor=float(levels.merge_factor),
        split_min_fraction=float(levels.split_min_fraction),
        min_relative_size=float(levels.min_relative_size),
        max_off_column_mm=float(levels.max_off_column_mm),
        min_step_fraction=float(levels.min_step_fraction),
        lateral_trim_fraction=float(levels.lateral_trim_fraction),
        semantic=semantic,
    )


def class_labels(probabilities: np.ndarray) -> np.ndarray:
    """The most probable class of each voxel (``uint8``) from ``(C, I, J, K)`` probabilities.

    The same as ``probabilities.argmax(axis=0)``; when each class is stored in
    Fortran order (as mapped back from the network grid) it runs on the reversed
    view, which reads memory in order and takes half the time.
    """
    first = probabilities[0]
    if first.ndim > 1 and first.flags.f_contiguous and not first.flags.c_contiguous:
        reversed_axes = (0, *range(probabilities.ndim - 1, 0, -1))
        return probabilities.transpose(reversed_axes).argmax(axis=0).astype(np.uint8).T
    return probabilities.argmax(axis=0).astype(np.uint8)


def _label_boxes(labels: np.ndarray) -> dict[int, tuple[slice, ...]]:
    """Bounding box of every positive label of an integer map, in increasing label order."""
    return {label: box for label, box in enumerate(ndimage.find_objects(labels), start=1) if box is not None}


def _ball(radius_mm: float, spacing: np.ndarray) -> np.ndarray:
    """Ellipsoidal structuring element of ``radius_mm`` on a grid of ``spacing``."""
    half = np.floor(radius_mm / spacing).astype(int)
    axes = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    distance = sum((a * s) ** 2 for a, s in zip(axes, spacing))
    return np.asarray(distance <= radius_mm**2 + 1e-9)


def _grow_into(seeds: np.ndarray, mask: np.ndarray, *, steps: int) -> np.ndarray:
    """Spread seed labels into the rest of ``mask`` by up to ``steps`` voxel dilations.

    Mask voxels out of reach stay unlabelled (they were not next to any body).
    """
    grown = seeds.copy()
    footprint = ndimage.generate_binary_structure(3, 1)
    for _ in range(steps):
        pending = mask & (grown == 0)
        if not pending.any():
            break
        dilated = ndimage.grey_dilation(grown, footprint=footprint)
        grown = np.where(pending, dilated, grown)
    return grown


def _components(
    labels: np.ndarray,
    volume: Volume,
    unit: float,
    *,
    box: tuple[slice, ...],
    origin: np.ndarray,
    s1_probability: np.ndarray | None = None,
    bone_probability: np.ndarray | None = None,
    lengths: bool = False,
) -> list[Component]:
    components = []
    sub = labels[box]
    for label, part in _label_boxes(sub).items():
        region = sub[part] == label
        corner = origin + np.array([p.start for p in part])
        centroid = np.argwhere(region).mean(axis=0) + corner
        s1 = 0.0
        if s1_probability is not None and bone_probability is not None:
            inside = tuple(slice(c, c + n) for c, n in zip(corner, region.shape))
            s1 = float(s1_probability[inside][region].sum() / max(bone_probability[inside][region].sum(), 1e-6))
        n_voxels = int(region.sum())
        components.append(
            Component(
                label=int(label),
                n_voxels=n_voxels,
                size=n_voxels * unit,
                centroid_ijk=centroid,
                centroid_ras=volume.world_coordinates(centroid)[0],
                s1_fraction=s1,
                length_mm=sagittal_length_mm(np.argwhere(region) + corner, volume) if lengths else 0.0,
            )
        )
    return components


def sagittal_length_mm(voxels: np.ndarray, volume: Volume) -> float:
    """Longest extent of a structure within the sagittal plane, in mm (robust to a few stray voxels)."""
    if len(voxels) < 3:
        return 0.0
    spacing = np.asarray(volume.spacing, dtype=float)
    in_plane = [axis for axis in range(3) if axis != volume.lateral_axis]
    points = voxels[:, in_plane] * spacing[in_plane]
    points = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(points, full_matrices=False)
    along = points @ axes[0]
    low, high = np.percentile(along, [2, 98])
    return float(high - low + spacing[in_plane].mean())
