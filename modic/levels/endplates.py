"""Endplate marrow bands and reference marrow regions, in 3D on the T1 grid.

The band of an endplate is the marrow of its vertebral body lying between
``exclude_mm`` and ``exclude_mm + depth`` from the adjacent disc (the first
millimetre is skipped: the endplate line and partial volume with the disc),
minus a rim along the body outline. Depth is a fraction of the body height or
a fixed number of millimetres. When the disc was not segmented, the band is
measured from the body's own upper or lower limit along the spine axis.

The reference is the central marrow of the same body (middle of its height
and of its anterior-posterior depth), used to normalise signal per patient,
per scanner and per bias field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from modic.arrays import bounding_box
from modic.io.volume import Volume
from modic.settings import EndplateSettings

LATERAL = np.array([1.0, 0.0, 0.0])
"""RAS left-right axis: the normal of a sagittal plane."""


@dataclass(frozen=True)
class EndplateRegion:
    """The marrow band under one endplate and its reference region.

    Attributes:
        name: e.g. ``"L5 superior"``.
        vertebra: e.g. ``"L5"``.
        side: ``"superior"`` or ``"inferior"``.
        disc: name of the adjacent disc, or None when it was not segmented.
        label: value of this band in the endplate label map.
        reference_label: value of the body's reference region in the reference map.
        n_voxels: voxels in the band.
        reference_voxels: voxels in the reference region.
        volume_mm: band volume in mm^3 (mm^2 for a single slice).
        depth_mm: band depth used.
        body_height_mm: height of the vertebral body along the spine axis.
        from_disc: True when measured from the segmented disc.
    """

    name: str
    vertebra: str
    side: str
    disc: str | None
    label: int
    reference_label: int
    n_voxels: int
    reference_voxels: int
    volume_mm: float
    depth_mm: float
    body_height_mm: float
    from_disc: bool


@dataclass(frozen=True)
class BodyFrame:
    """A vertebral body's local frame: centre, cranio-caudal axis, AP axis, and voxel coordinates in it.

    ``t_low`` and ``t_high`` are the inferior and superior endplate surfaces at
    the middle of the body (along ``axis``, relative to ``centre``); see
    :attr:`height_mm`.
    """

    centre: np.ndarray
    axis: np.ndarray
    ap_axis: np.ndarray
    t_low: float
    t_high: float
    t: np.ndarray
    s: np.ndarray

    @property
    def height_mm(self) -> float:
        """The vertebral body height: modic's one definition, used by every stage.

        The mid-vertebral height: the distance between the superior and the
        inferior endplate along the spine axis, through the middle of the body
        (the central half of its anterior-posterior extent; the 2nd and 98th
        percentiles of the voxels there, so that a stray voxel does not count).
        It is the height radiologists measure in the middle of the body, where
        a Modic band is measured from the endplate (the endplate band's depth
        and the extent's height fraction are fractions of it); the body's
        corners and a wedge shape do not inflate it, and the endplates'
        central concavity is inside it. The synthetic generator plants its
        bands against the same height (:attr:`modic.synth.anatomy.Vertebra.height`).
        """
        return self.t_high - self.t_low


def body_frame(body: np.ndarray, volume: Volume, axis: np.ndarray) -> BodyFrame:
    """Project the voxels of ``body`` (bool mask) onto its spine axis (``t``) and AP axis (``s``)."""
    points = volume.world_coordinates(np.argwhere(body))
    centre = points.mean(axis=0)
    axis = axis / np.linalg.norm(axis)
    ap_axis = np.cross(axis, LATERAL)
    ap_axis /= max(np.linalg.norm(ap_axis), 1e-9)
    t = (points - centre) @ axis
    s = (points - centre) @ ap_axis
    central = np.abs(s - np.median(s)) <= 0.25 * max(np.ptp(s), 1e-6)
    low, high = np.percentile(t[central] if central.any() else t, [2, 98])
    return BodyFrame(centre, axis, ap_axis, float(low), float(high), t, s)


def endplate_band(
    body: np.ndarray,
    disc: np.ndarray | None,
    frame: BodyFrame,
    volume: Volume,
    *,
    side: str,
    settings: EndplateSettings,
) -> tuple[np.ndarray, float]:
    """Boolean band mask (same shape as ``body``) and the depth used in mm."""
    depth = settings.depth.millimetres(body_height_mm=frame.height_mm)
    exclude = float(settings.exclude_mm)
    spacing = np.asarray(volume.spacing)
    inner = _inner(body, disc, spacing, float(settings.rim_mm))
    if disc is not None and disc.any():
        distance = _distance_to(disc, spacing, near=body, within_mm=exclude + depth)
        band = inner & (distance > exclude) & (distance <= exclude + depth)
        return band, depth
    band = np.zeros_like(body)
    index = np.argwhere(body)
    if side == "superior":
        limit = np.percentile(frame.t, 98)
        chosen = (frame.t <= limit - exclude) & (frame.t > limit - exclude - depth)
    else:
        limit = np.percentile(frame.t, 2)
        chosen = (frame.t >= limit + exclude) & (frame.t < limit + exclude + depth)
    band[tuple(index[chosen].T)] = True
    return band & inner, depth


def reference_region(body: np.ndarray, frame: BodyFrame, volume: Volume, *, settings: EndplateSettings) -> np.ndarray:
    """Central marrow of the body (see module docstring)."""
    low_fraction, high_fraction = (float(v) for v in settings.reference_height)
    t_low, height = frame.t_low, frame.height_mm
    ap_half = 0.5 * float(settings.reference_ap) * np.ptp(frame.s)
    chosen = (
        (frame.t >= t_low + low_fraction * height)
        & (frame.t <= t_low + high_fraction * height)
        & (np.abs(frame.s - np.median(frame.s)) <= ap_half)
    )
    region = np.zeros_like(body)
    region[tuple(np.argwhere(body)[chosen].T)] = True
    return region & _inner(body, None, np.asarray(volume.spacing), float(settings.rim_mm))


def _inner(body: np.ndarray, disc: np.ndarray | None, spacing: np.ndarray, rim_mm: float) -> np.ndarray:
    """Body voxels farther than ``rim_mm`` from anything that is neither body nor the given disc.

    Computed in the body's bounding box grown by more than ``rim_mm``: what lies
    farther cannot bring a body voxel within ``rim_mm``, so the result is exact.
    """
    box = _grown_box(body, spacing, rim_mm)
    allowed = body[box] | disc[box] if disc is not None else body[box]
    inner = np.zeros_like(body)
    inner[box] = body[box] & (_edt(allowed, spacing, pad_outside=True) > rim_mm)
    return inner


def _distance_to(mask: np.ndarray, spacing: np.ndarray, *, near: np.ndarray, within_mm: float) -> np.ndarray:
    """Distance (mm) to ``mask``, exact wherever it is at most ``within_mm`` from a voxel of ``near``.

    Elsewhere it is at least ``within_mm`` (infinite outside the box searched):
    the transform runs only in the bounding box of ``near`` grown by more than
    ``within_mm``, several times less work than the whole window.
    """
    box = _grown_box(near, spacing, within_mm)
    distance = np.full(mask.shape, np.inf)
    if mask[box].any():
        distance[box] = _edt(~mask[box], spacing, pad_outside=False)
    return distance


def _grown_box(mask: np.ndarray, spacing: np.ndarray, margin_mm: float) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by more than ``margin_mm`` on every side (the whole array if empty)."""
    margin = np.ceil(margin_mm / np.asarray(spacing, dtype=float)).astype(int) + 1
    return bounding_box(mask, margin) or tuple(slice(0, n) for n in mask.shape)


def _edt(mask: np.ndarray, spacing: np.ndarray, *, pad_outside: bool) -> np.ndarray:
    """Euclidean distance (mm) of each True voxel to the nearest False one, ignoring singleton axes.

    With ``pad_outside`` the space beyond the array counts as False.
    """
    keep = np.asarray(mask.shape) > 1
    squeezed = mask.reshape(tuple(np.asarray(mask.shape)[keep]))
    if pad_outside:
        squeezed = np.pad(squeezed, 1, constant_values=False)
    distance = ndimage.distance_transform_edt(squeezed, sampling=spacing[keep])
    if pad_outside:
        distance = distance[tuple(slice(1, -1) for _ in range(distance.ndim))]
    return distance.reshape(mask.shape)
