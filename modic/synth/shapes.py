"""Vectorised implicit-shape primitives (approximate signed distances, mm; negative inside).

Every function works elementwise on float32 arrays of any shape, so a shape is
evaluated on a whole block of sample points at once.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def coverage(sdf: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a sample footprint of size ``width`` inside the shape (linear ramp across the edge)."""
    return np.clip(F32(0.5) - sdf * F32(1.0 / width), F32(0.0), F32(1.0))


def smooth_step(x: np.ndarray, width: float) -> np.ndarray:
    """0 for ``x <= -width/2``, 1 for ``x >= width/2``, smooth (cubic) in between."""
    t = np.clip(x * F32(1.0 / width) + F32(0.5), F32(0.0), F32(1.0))
    return t * t * (F32(3.0) - F32(2.0) * t)


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union of two shapes with a fillet of size ``k`` (polynomial smooth minimum)."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.maximum(F32(k) - np.abs(a - b), F32(0.0)) * F32(1.0 / k)
    return np.minimum(a, b) - h * h * F32(k / 4.0)


def rounded_intersection(a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """Intersection of two shapes whose edge where they meet is rounded with ``radius``."""
    r = F32(radius)
    qa = np.maximum(a + r, F32(0.0))
    qb = np.maximum(b + r, F32(0.0))
    return np.sqrt(qa * qa + qb * qb) + np.minimum(np.maximum(a, b) + r, F32(0.0)) - r


def ellipse(u: np.ndarray, w: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Signed distance (first order) to the ellipse ``(u/a)^2 + (w/b)^2 = 1``."""
    ua = u / a
    wb = w / b
    rho = np.sqrt(ua * ua + wb * wb)
    ga = ua / a
    gb = wb / b
    grad = np.sqrt(ga * ga + gb * gb)
    return (rho - F32(1.0)) * rho / np.maximum(grad, F32(1e-6))


def ellipsoid(u: np.ndarray, v: np.ndarray, w: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    """Signed distance (first order) to an axis-aligned ellipsoid with semi-axes ``a, b, c``."""
    ua, vb, wc = u / F32(a), v / F32(b), w / F32(c)
    rho = np.sqrt(ua * ua + vb * vb + wc * wc)
    ga, gb, gc = ua / F32(a), vb / F32(b), wc / F32(c)
    grad = np.sqrt(ga * ga + gb * gb + gc * gc)
    return (rho - F32(1.0)) * rho / np.maximum(grad, F32(1e-6))


def slab(x: np.ndarray, low: float | np.ndarray, high: float | np.ndarray) -> np.ndarray:
    """Signed distance to the slab ``low <= x <= high``."""
    return np.maximum(low - x, x - high)


def capsule_2d(
    u: np.ndarray, w: np.ndarray, start: tuple[float, float], end: tuple[float, float], radius: float
) -> np.ndarray:
    """Signed distance to a 2D segment from ``start`` to ``end`` thickened by ``radius``."""
    su, sw = start
    du, dw = end[0] - su, end[1] - sw
    length2 = du * du + dw * dw
    t = np.clip(((u - F32(su)) * F32(du) + (w - F32(sw)) * F32(dw)) * F32(1.0 / length2), F32(0.0), F32(1.0))
    pu = u - F32(su) - t * F32(du)
    pw = w - F32(sw) - t * F32(dw)
    return np.sqrt(pu * pu + pw * pw) - F32(radius)
