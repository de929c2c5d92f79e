"""Sampled fields anchored in the anatomy frame: 1D profiles, 2D tables and smooth 3D random fields.

Anatomy is evaluated at arbitrary sample points of many series grids, so
anything that is expensive to evaluate analytically (distance to the curved
spine, random textures) is precomputed once per study on a regular grid in
the anatomy frame and interpolated linearly at the sample points. Textures
are small periodic tiles (larger than any structure they texture), so they
cost little and every series of a study sees the same texture at the same
place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

F32 = np.float32


@dataclass(frozen=True)
class Profile:
    """A function of one coordinate sampled uniformly from ``start`` with step ``step`` (clamped at the ends)."""

    start: float
    step: float
    values: np.ndarray

    def __call__(self, s: np.ndarray) -> np.ndarray:
        t = np.clip((s - F32(self.start)) * F32(1.0 / self.step), F32(0.0), F32(len(self.values) - 1.001))
        i = t.astype(np.int32)
        f = t - i
        lo = self.values[i]
        return lo + f * (self.values[i + 1] - lo)


@dataclass(frozen=True)
class Table2D:
    """Channels sampled on a regular (y, z) grid; bilinear lookup, clamped at the edges.

    ``channels`` are 2D arrays of shape ``(ny, nz)``.
    """

    origin: tuple[float, float]
    step: float
    channels: tuple[np.ndarray, ...]

    def __call__(self, y: np.ndarray, z: np.ndarray) -> list[np.ndarray]:
        ny, nz = self.channels[0].shape
        inv = F32(1.0 / self.step)
        ty = np.clip((y - F32(self.origin[0])) * inv, F32(0.0), F32(ny - 1.001))
        tz = np.clip((z - F32(self.origin[1])) * inv, F32(0.0), F32(nz - 1.001))
        iy = ty.astype(np.int32)
        iz = tz.astype(np.int32)
        fy = ty - iy
        fz = tz - iz
        base = iy * nz + iz
        out = []
        for channel in self.channels:
            flat = channel.reshape(-1)
            top = _lerp(flat[base], flat[base + 1], fz)
            bottom = _lerp(flat[base + nz], flat[base + nz + 1], fz)
            out.append(_lerp(top, bottom, fy))
        return out


@dataclass(frozen=True)
class Tile3D:
    """A periodic scalar field: one tile sampled on a regular (x, y, z) grid, repeated in all directions.

    ``values`` holds the tile plus one wrapped cell at the end of each axis so
    that trilinear lookup never needs a modulo on the neighbour index.
    """

    step: tuple[float, float, float]
    values: np.ndarray

    @property
    def period(self) -> tuple[int, int, int]:
        return tuple(n - 1 for n in self.values.shape)  # type: ignore[return-value]

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        px, py, pz = self.period
        tx = np.mod(x * F32(1.0 / self.step[0]), F32(px))
        ty = np.mod(y * F32(1.0 / self.step[1]), F32(py))
        tz = np.mod(z * F32(1.0 / self.step[2]), F32(pz))
        ix = np.minimum(tx.astype(np.int32), px - 1)
        iy = np.minimum(ty.astype(np.int32), py - 1)
        iz = np.minimum(tz.astype(np.int32), pz - 1)
        fx = tx - ix
        fy = ty - iy
        fz = tz - iz
        flat = self.values.reshape(-1)
        sy = pz + 1
        sx = (py + 1) * (pz + 1)
        base = ix * sx + iy * sy + iz
        c00 = _lerp(flat[base], flat[base + 1], fz)
        c01 = _lerp(flat[base + sy], flat[base + sy + 1], fz)
        c10 = _lerp(flat[base + sx], flat[base + sx + 1], fz)
        c11 = _lerp(flat[base + sx + sy], flat[base + sx + sy + 1], fz)
        return _lerp(_lerp(c00, c01, fy), _lerp(c10, c11, fy), fx)


@dataclass(frozen=True)
class Tile2D:
    """A periodic scalar field over a plane; bilinear lookup (``values`` padded like :class:`Tile3D`)."""

    step: tuple[float, float]
    values: np.ndarray

    def __call__(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        pp, pq = (n - 1 for n in self.values.shape)
        tp = np.mod(p * F32(1.0 / self.step[0]), F32(pp))
        tq = np.mod(q * F32(1.0 / self.step[1]), F32(pq))
        ip = np.minimum(tp.astype(np.int32), pp - 1)
        iq = np.minimum(tq.astype(np.int32), pq - 1)
        fp = tp - ip
        fq = tq - iq
        flat = self.values.reshape(-1)
        base = ip * (pq + 1) + iq
        top = _lerp(flat[base], flat[base + 1], fq)
        bottom = _lerp(flat[base + pq + 1], flat[base + pq + 2], fq)
        return _lerp(top, bottom, fp)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + t * (b - a)


def _periodic_noise(
    rng: np.random.Generator,
    period_mm: tuple[float, ...],
    step: tuple[float, ...],
    sigma_mm: tuple[float, ...],
) -> np.ndarray:
    """Gaussian-filtered white noise, periodic, zero mean and unit std, padded by one wrapped cell per axis."""
    shape = tuple(max(int(round(p / s)), 4) for p, s in zip(period_mm, step, strict=True))
    noise = rng.standard_normal(shape, dtype=np.float32)
    sigma = tuple(sg / s for sg, s in zip(sigma_mm, step, strict=True))
    smooth = ndimage.gaussian_filter(noise, sigma=sigma, mode="wrap", truncate=3.0)
    smooth -= smooth.mean()
    smooth /= max(float(smooth.std()), 1e-6)
    return np.ascontiguousarray(np.pad(smooth, [(0, 1)] * len(shape), mode="wrap"), dtype=np.float32)


def random_tile(
    rng: np.random.Generator,
    *,
    period_mm: tuple[float, float, float],
    step: tuple[float, float, float],
    sigma_mm: tuple[float, float, float],
) -> Tile3D:
    """A periodic 3D random texture with correlation lengths ``sigma_mm``."""
    return Tile3D(step=tuple(float(v) for v in step), values=_periodic_noise(rng, period_mm, step, sigma_mm))


def random_tile_2d(
    rng: np.random.Generator,
    *,
    period_mm: tuple[float, float],
    step: tuple[float, float],
    sigma_mm: tuple[float, float],
) -> Tile2D:
    """A periodic 2D random texture with correlation lengths ``sigma_mm``."""
    return Tile2D(step=tuple(float(v) for v in step), values=_periodic_noise(rng, period_mm, step, sigma_mm))
