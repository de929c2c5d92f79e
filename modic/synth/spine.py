"""A curvilinear frame that follows the spine: ``s`` along the centreline, ``n`` towards posterior.

Structures that run along the whole column (dural sac, cord, ligaments, back
muscles, the back's skin) are defined as functions of ``(s, n, x)``. The
centreline is a cubic spline through the vertebral body and disc centres,
extended straight beyond both ends. ``(s, n)`` of a point depends only on its
``(y, z)``, so it is precomputed on a 2D table with a Euclidean distance
transform and refined with the local tangent; properties that vary along the
spine (canal depth, body depth ...) are :class:`~modic.synth.fields.Profile`\\ s
of ``s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline

from modic.synth.anatomy import Anatomy, Vertebra
from modic.synth.fields import Profile, Table2D

EXTENSION_MM = 400.0
"""How far the centreline is extended straight beyond the top and bottom vertebrae."""
TABLE_MARGIN_MM = 330.0
"""Margin of the (s, n) table around the vertebral centres: covers a 450 mm localizer."""
PROFILE_STEP_MM = 0.5
SMOOTHING_MM = 18.0
"""Gaussian smoothing of the centreline along its length."""
SKIN_SMOOTHING_MM = 15.0
"""Gaussian smoothing of the back's skin line along z (the back has no kinks)."""


@dataclass(frozen=True)
class SpineFrame:
    """The centreline, its (s, n) lookup table and the profiles along it."""

    table: Table2D
    s_vertebra: tuple[float, ...]
    s_disc: dict[tuple[int, int], float]
    profiles: dict[str, Profile]
    s_conus: float
    s_sac_end: float
    back_skin: Profile
    """Anatomy-frame y of the skin of the back as a function of z (the back never overhangs)."""
    curve_s: np.ndarray
    curve_yz: np.ndarray

    def __getitem__(self, name: str) -> Profile:
        return self.profiles[name]

    def sn(self, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, n = self.table(y, z)
        return s, n

    def point(self, s: float, n: float = 0.0) -> tuple[float, float]:
        """(y, z) of the point ``n`` posterior of the centreline at ``s``."""
        y = float(np.interp(s, self.curve_s, self.curve_yz[:, 0]))
        z = float(np.interp(s, self.curve_s, self.curve_yz[:, 1]))
        k = int(np.clip(np.searchsorted(self.curve_s, s), 1, len(self.curve_s) - 1))
        ty, tz = self.curve_yz[k] - self.curve_yz[k - 1]
        norm = math.hypot(ty, tz) or 1.0
        return y - tz / norm * n, z + ty / norm * n


def build_spine_frame(anatomy: Anatomy, *, step: float) -> SpineFrame:
    """Centreline, (s, n) table at ``step`` mm and the anatomical profiles of ``anatomy``."""
    knots: list[tuple[float, float]] = []
    disc_of = {(d.lower, d.upper): d for d in anatomy.discs}
    for v in anatomy.vertebrae:
        knots.append((v.frame.y, v.frame.z))
        disc = disc_of.get((v.index, v.index + 1))
        if disc is not None:
            knots.append((disc.frame.y, disc.frame.z))
    pts = np.asarray(knots)
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    spline = CubicSpline(chord, pts, bc_type="natural")
    dense_step = step / 4.0
    inner = spline(np.arange(0.0, chord[-1] + dense_step, dense_step))
    # Smooth away the small kinks between bodies and discs: the frame must stay regular far from the spine.
    inner = ndimage.gaussian_filter1d(inner, SMOOTHING_MM / dense_step, axis=0, mode="nearest")
    start_dir = _unit(inner[0] - inner[int(10.0 / dense_step)])
    end_dir = _unit(inner[-1] - inner[-1 - int(10.0 / dense_step)])
    before = inner[0] + np.outer(np.arange(EXTENSION_MM, 0.0, -dense_step), start_dir)
    after = inner[-1] + np.outer(np.arange(dense_step, EXTENSION_MM, dense_step), end_dir)
    curve = np.concatenate([before, inner, after])
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)]) - EXTENSION_MM
    tangent = np.gradient(curve, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)

    table = _sn_table(curve, arc, tangent, normal, pts, step=step)

    def project(frame) -> tuple[float, float]:  # type: ignore[no-untyped-def]
        s, n = table(np.array([frame.y], dtype=np.float32), np.array([frame.z], dtype=np.float32))
        return float(s[0]), float(n[0])

    at_vertebra = [project(v.frame) for v in anatomy.vertebrae]
    at_disc = {(d.lower, d.upper): project(d.frame) for d in anatomy.discs}
    s_range = (float(arc[0]), float(arc[-1]))
    profiles, s_conus, s_sac_end = _profiles(anatomy, at_vertebra, at_disc, s_range=s_range)
    return SpineFrame(
        table=table,
        s_vertebra=tuple(s for s, _ in at_vertebra),
        s_disc={key: s for key, (s, _) in at_disc.items()},
        profiles=profiles,
        s_conus=s_conus,
        s_sac_end=s_sac_end,
        back_skin=_back_skin(curve, arc, normal, profiles["skin_back"]),
        curve_s=arc,
        curve_yz=curve,
    )


def _back_skin(curve: np.ndarray, arc: np.ndarray, normal: np.ndarray, skin_n: Profile) -> Profile:
    """Most posterior extent, at each height, of the points ``skin_n(s)`` behind the centreline.

    Taking the envelope (rather than ``n = skin_n(s)`` directly) keeps the skin
    smooth where the back is farther from the spine than the lordosis radius.
    """
    offset = skin_n(arc.astype(np.float32)).astype(float)
    points = curve + normal * offset[:, None]
    z_low, z_high = float(points[:, 1].min()), float(points[:, 1].max())
    bins = np.arange(z_low, z_high + PROFILE_STEP_MM, PROFILE_STEP_MM)
    index = np.clip(np.rint((points[:, 1] - z_low) / PROFILE_STEP_MM).astype(int), 0, len(bins) - 1)
    y = np.full(len(bins), np.inf)
    np.minimum.at(y, index, points[:, 0])
    filled = np.isfinite(y)
    y = np.interp(bins, bins[filled], y[filled])
    y = ndimage.gaussian_filter1d(y, SKIN_SMOOTHING_MM / PROFILE_STEP_MM, mode="nearest")
    return Profile(start=z_low, step=PROFILE_STEP_MM, values=y.astype(np.float32))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _sn_table(
    curve: np.ndarray, arc: np.ndarray, tangent: np.ndarray, normal: np.ndarray, knots: np.ndarray, *, step: float
) -> Table2D:
    low = np.floor((knots.min(axis=0) - TABLE_MARGIN_MM) / step) * step
    high = knots.max(axis=0) + TABLE_MARGIN_MM
    shape = tuple(int(np.ceil((h - lo) / step)) + 1 for lo, h in zip(low, high, strict=True))
    index = np.rint((curve - low) / step).astype(int)
    inside = np.all((index >= 0) & (index < np.array(shape)), axis=1)
    owner = np.full(shape, -1, dtype=np.int32)
    owner[index[inside, 0], index[inside, 1]] = np.nonzero(inside)[0].astype(np.int32)
    nearest = ndimage.distance_transform_edt(owner < 0, return_distances=False, return_indices=True)
    k = owner[nearest[0], nearest[1]]
    gy = low[0] + step * np.arange(shape[0])[:, None]
    gz = low[1] + step * np.arange(shape[1])[None, :]
    dy = gy - curve[k, 0]
    dz = gz - curve[k, 1]
    s = arc[k] + dy * tangent[k, 0] + dz * tangent[k, 1]
    n = dy * normal[k, 0] + dz * normal[k, 1]
    return Table2D(origin=(float(low[0]), float(low[1])), step=step,
                   channels=(s.astype(np.float32), n.astype(np.float32)))


def _profiles(
    anatomy: Anatomy,
    at_vertebra: list[tuple[float, float]],
    at_disc: dict[tuple[int, int], tuple[float, float]],
    *,
    s_range: tuple[float, float],
) -> tuple[dict[str, Profile], float, float]:
    """Profiles along s of what structures following the spine need, the conus tip and the sac end.

    Positions across the spine (``*_wall``, ``spinous_tip``, ``muscle_back``,
    ``skin_back``) are ``n`` values; the others are sizes.
    """
    verts = anatomy.vertebrae
    soft = anatomy.soft
    canal = anatomy.canal
    grid = np.arange(s_range[0], s_range[1] + PROFILE_STEP_MM, PROFILE_STEP_MM)
    s_vertebra = [s for s, _ in at_vertebra]
    s_disc = {key: s for key, (s, _) in at_disc.items()}

    def profile(points: list[tuple[float, float]]) -> Profile:
        points = sorted(points)
        xs = np.array([p[0] for p in points])
        ys = np.array([p[1] for p in points])
        return Profile(start=float(grid[0]), step=PROFILE_STEP_MM, values=np.interp(grid, xs, ys).astype(np.float32))

    def at_vertebrae(value) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
        return [(at_vertebra[v.index][0], float(value(v, at_vertebra[v.index][1]))) for v in verts]

    def at_discs(value) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
        return [(at_disc[(d.lower, d.upper)][0], float(value(d, at_disc[(d.lower, d.upper)][1])))
                for d in anatomy.discs]

    def canal_depth(v: Vertebra) -> float:
        return v.posterior.canal_depth if v.posterior else 0.0

    def canal_half(v: Vertebra, _n: float) -> float:
        return v.posterior.canal_half_width if v.posterior else 3.0

    def spinous_tip(v: Vertebra, n: float) -> float:
        p = v.posterior
        if p is None:
            return n + v.half_ap + 3.0
        return n + v.half_ap + p.canal_depth + p.lamina_thickness + p.spinous_length * math.cos(p.spinous_angle)

    by_index = {v.index: v for v in verts}
    s1 = anatomy.s1
    s_s1 = s_vertebra[s1.index]
    s_s2 = s_vertebra[s1.index - 1]
    s_s4 = s_vertebra[max(s1.index - 3, 0)]
    s_top_lumbar = s_vertebra[anatomy.top_lumbar.index]
    s_t12 = s_vertebra[min(anatomy.top_lumbar.index + 1, len(verts) - 1)]
    segment = s_vertebra[anatomy.top_lumbar.index] - s_vertebra[anatomy.top_lumbar.index - 1]
    s_conus = s_top_lumbar - canal.conus_below * segment
    l5s1 = s_disc[(s1.index, s1.index + 1)]

    # Bodies are waisted: at their centre the walls are (1 - waist) of the endplate depth from the axis.
    posterior_wall = profile(
        at_vertebrae(lambda v, n: n + v.half_ap * (1.0 - v.waist))
        + at_discs(lambda d, n: n + d.half_ap * (1.0 + d.bulge))
    )
    anterior_wall = profile(
        at_vertebrae(lambda v, n: n - v.half_ap * (1.0 - v.waist))
        + at_discs(lambda d, n: n - d.half_ap * (1.0 + d.bulge))
    )
    half_width = profile(
        at_vertebrae(lambda v, _n: v.half_width) + at_discs(lambda d, _n: d.half_width * (1.0 + d.bulge))
    )
    disc_canal = [
        (s_disc[(d.lower, d.upper)], (canal_depth(by_index[d.lower]) + canal_depth(by_index[d.upper])) / 2)
        for d in anatomy.discs
    ]
    depth = profile(at_vertebrae(lambda v, _n: canal_depth(v)) + disc_canal)
    half = profile(at_vertebrae(canal_half))
    epidural = profile(
        [(s_range[0], canal.anterior_epidural_l5s1), (s_s1, canal.anterior_epidural_l5s1),
         (l5s1 + 8.0, canal.anterior_epidural_l5s1), (l5s1 + 30.0, canal.anterior_epidural),
         (s_range[1], canal.anterior_epidural)]
    )
    sac_scale = profile([(s_range[0], 0.0), (s_s2 - 6.0, 0.0), (s_s2 + 12.0, 1.0), (s_range[1], 1.0)])
    r = canal.cord_radius
    cord = profile(
        [(s_range[0], 0.0), (s_s2, 0.0), (s_s2 + 1.0, 0.6), (s_conus, 0.6), (s_conus + 22.0, 1.1 * r),
         (s_conus + 45.0, 1.12 * r), (s_conus + 90.0, r), (s_range[1], r)]
    )
    muscle_factor = profile([(s_range[0], 0.0), (s_s4, 0.0), (s_s2, 0.45), (s_s1, 1.0), (s_range[1], 1.0)])
    tip = profile(at_vertebrae(spinous_tip))
    beyond = np.float32(soft.muscle_beyond_spinous) * muscle_factor.values
    muscle_back = Profile(tip.start, tip.step, tip.values + beyond)
    thoracic_fat = profile([(s_range[0], 1.0), (s_top_lumbar, 1.0), (s_top_lumbar + 80.0, 0.6), (s_range[1], 0.6)])
    gluteal = profile([(s_range[0], 1.0), (s_s4, 1.0), (s_s1 - 5.0, 0.0), (s_range[1], 0.0)])
    skin_back = Profile(
        tip.start,
        tip.step,
        muscle_back.values + np.float32(soft.back_fat) * thoracic_fat.values
        + np.float32(soft.gluteal_fat_extra) * gluteal.values,
    )
    muscle_half = profile(
        [(s_range[0], 0.0), (s_s4, 0.0), (s_s2, 0.45 * soft.muscle_half_width), (s_s1, soft.muscle_half_width),
         (s_top_lumbar + 60.0, soft.muscle_half_width), (s_range[1], 0.75 * soft.muscle_half_width)]
    )
    psoas = profile(
        [(s_range[0], 0.0), (s_s2, 0.0), (s_s1, 0.8 * soft.psoas_radius),
         (s_disc.get((s1.index + 1, s1.index + 2), s_s1 + 40.0), soft.psoas_radius),
         (s_t12, 0.25 * soft.psoas_radius), (s_t12 + 30.0, 0.0), (s_range[1], 0.0)]
    )
    interspinous = profile([(s_range[0], 0.0), (s_s1 - 5.0, 0.0), (s_s1 + 10.0, 1.0), (s_range[1], 1.0)])
    profiles = {
        "posterior_wall": posterior_wall,
        "anterior_wall": anterior_wall,
        "half_width": half_width,
        "canal_depth": depth,
        "canal_half": half,
        "epidural": epidural,
        "sac_scale": sac_scale,
        "cord": cord,
        "spinous_tip": tip,
        "muscle_back": muscle_back,
        "skin_back": skin_back,
        "muscle_half": muscle_half,
        "psoas": psoas,
        "interspinous": interspinous,
    }
    return profiles, s_conus, s_s2
