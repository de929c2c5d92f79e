"""Image formation: sample the scene over every voxel, then blur, coil bias, scaling and Rician noise.

Each voxel is the average of samples spread over its slice thickness (odd
count, so the centre sample lies on the slice) and, for coarse pixels, over
sub-pixels; together with the anti-aliased shape edges this models partial
volume. Like a scanner, each series is acquired on a coarser in-plane matrix (its
acquired resolution): the noiseless image there is multiplied by a smooth
receive-coil bias, scaled to a scanner-like range and corrupted with complex
Gaussian noise, then zero-filled in k-space to the output matrix; the stored
magnitude is Rician.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import fft, ndimage

from modic.io.volume import Volume
from modic.synth.acquisition import GridSpec, SeriesPlan
from modic.synth.config import RenderSettings
from modic.synth.scene import Block, Scene
from modic.synth.tissues import TissueModel

F32 = np.float32
MAX_STORED = 4095.0
"""Images are stored as 12-bit values like most MR scanners write them."""
SAMPLES_PER_MM_THICKNESS = 0.5
BIAS_STEP = 8
BLOCK_SAMPLES = 1_500_000
"""Sample points rendered at once (several slices per block bound the per-call overhead)."""
FERMI_RADIUS = 0.9
FERMI_WIDTH = 0.05
"""Fermi k-space filter: transition at 90% of the acquired k-space radius."""
"""Thick slices (localizers) get at least this many through-slice samples per mm."""


def _odd(n: int) -> int:
    return n if n % 2 else n + 1


class Renderer:
    """Renders series and label maps of one study's scene."""

    def __init__(
        self,
        scene: Scene,
        tissues: TissueModel,
        render: RenderSettings,
        *,
        pose_inverse: np.ndarray,
        seed: int,
    ) -> None:
        self.scene = scene
        self.tissues = tissues
        self.render = render
        self.pose_inverse = pose_inverse
        self.seed = seed
        self.through = render.through_slice_samples
        self.subpixel = render.in_plane_subpixel

    def _blocks(self, grid: GridSpec, *, labels: bool = False):  # type: ignore[no-untyped-def]
        """Blocks of sample points covering consecutive output slices (voxel centres only for ``labels``).

        Yields ``(first slice, slice count, in-plane supersampling, samples per slice, block)``.
        """
        to_anatomy = self.pose_inverse @ grid.affine
        spacing = grid.pixel_spacing
        f = 1 if labels else max(1, math.ceil(spacing / self.subpixel - 1e-6))
        nt = 1 if labels else _odd(max(self.through, math.ceil(grid.thickness * SAMPLES_PER_MM_THICKNESS)))
        rel = 0.0 if labels else grid.thickness / grid.slice_spacing
        offsets = (np.arange(nt) + 0.5) / nt * rel - 0.5 * rel
        ni, nj, nk = grid.shape
        per_slice = nt * ni * f * nj * f
        chunk = max(1, min(nk, BLOCK_SAMPLES // per_slice))
        sub = np.eye(4)
        sub[0, 0] = sub[1, 1] = 1.0 / f
        sub[0, 3] = sub[1, 3] = 0.5 / f - 0.5
        affine = to_anatomy @ sub
        for k0 in range(0, nk, chunk):
            count = min(chunk, nk - k0)
            positions = (np.arange(k0, k0 + count)[:, None] + offsets[None, :]).ravel()
            yield k0, count, f, nt, Block(affine=affine, positions=positions, size=(ni * f, nj * f),
                                          footprint=spacing / f, group=nt)

    def acquisition_grid(self, plan: SeriesPlan, grid: GridSpec) -> GridSpec:
        """The grid the series is acquired on: same field of view and first voxel, coarser in-plane matrix."""
        ni, nj, nk = grid.shape
        spacing = grid.pixel_spacing
        mi = min(ni, max(8, round(ni * spacing / plan.acquired_resolution)))
        mj = min(nj, max(8, round(nj * spacing / plan.acquired_resolution)))
        affine = grid.affine.copy()
        affine[:3, 0] *= ni / mi
        affine[:3, 1] *= nj / mj
        return GridSpec(affine=affine, shape=(mi, mj, nk), thickness=grid.thickness)

    def signal(self, plan: SeriesPlan, grid: GridSpec) -> np.ndarray:
        """Noiseless partial-volume signal on ``grid`` for the plan's sequence."""
        sig = self.tissues.signals(plan.sequence)
        ni, nj, nk = grid.shape
        out = np.empty((ni, nj, nk), dtype=F32)
        for k0, count, f, nt, block in self._blocks(grid):
            values = self.scene.paint(block, sig)
            out[:, :, k0 : k0 + count] = values.reshape(count, nt, ni, f, nj, f).mean(axis=(1, 3, 5)).transpose(1, 2, 0)
        return out

    def labels(self, grid: GridSpec) -> dict[str, np.ndarray]:
        """Label maps at the voxel centres of ``grid``."""
        ni, nj, nk = grid.shape
        maps: dict[str, np.ndarray] = {}
        for k0, count, _, _, block in self._blocks(grid, labels=True):
            for name, values in self.scene.labels(block).items():
                maps.setdefault(name, np.zeros((ni, nj, nk), dtype=np.uint8))[:, :, k0 : k0 + count] = (
                    values.transpose(1, 2, 0)
                )
        return maps

    def image(self, plan: SeriesPlan, grid: GridSpec, *, block: int) -> np.ndarray:
        """The stored image: signal on the acquisition grid times coil bias, scaled, plus complex noise,
        zero-filled to the output matrix in k-space; its magnitude is Rician."""
        rng = np.random.default_rng([self.seed, 10, plan.protocol.number, block])
        acquired = self.acquisition_grid(plan, grid)
        sig = self.tissues.signals(plan.sequence)
        scale = plan.max_value / max(sig.brightest, 1e-6)
        image = self.signal(plan, acquired) * self._bias(rng, acquired) * F32(scale)
        noise = F32(plan.max_value / plan.snr)
        real = image + noise * rng.standard_normal(image.shape, dtype=np.float32)
        imag = noise * rng.standard_normal(image.shape, dtype=np.float32)
        magnitude = np.abs(zero_fill(real + 1j * imag, grid.shape[:2]))
        return np.clip(np.rint(magnitude), 0.0, MAX_STORED).astype(F32)

    def _bias(self, rng: np.random.Generator, grid: GridSpec) -> np.ndarray:
        """Posterior surface-coil falloff times a smooth random low-order field, at voxel centres.

        Evaluated every ``BIAS_STEP`` voxels in-plane and interpolated (the field is smooth).
        """
        cfg = self.render.bias
        falloff = cfg.coil_falloff.draw(rng)
        strength = cfg.coil_strength.draw(rng)
        amplitude = cfg.random.draw(rng)
        coeffs = rng.uniform(-1.0, 1.0, size=6)
        ni, nj, nk = grid.shape
        to_anatomy = self.pose_inverse @ grid.affine
        ci = np.arange(0, ni + BIAS_STEP, BIAS_STEP, dtype=np.float64)
        cj = np.arange(0, nj + BIAS_STEP, BIAS_STEP, dtype=np.float64)
        ck = np.arange(nk, dtype=np.float64)
        i, j, k = np.meshgrid(ci, cj, ck, indexing="ij")
        x, y, z = (to_anatomy[c, 0] * i + to_anatomy[c, 1] * j + to_anatomy[c, 2] * k + to_anatomy[c, 3]
                   for c in range(3))
        back = self.scene.back_surface_y()
        depth = np.maximum(y - back, 0.0) / falloff
        coil = (1.0 - strength) + strength * np.exp(-depth * depth)
        xs, ys = x / 150.0, (y - back) / 150.0
        zs = (z - self.scene.anatomy.vertebra("L3").frame.z) / 150.0
        smooth = (coeffs[0] * xs + coeffs[1] * ys + coeffs[2] * zs + coeffs[3] * zs * zs
                  + coeffs[4] * ys * zs + coeffs[5] * xs * xs)
        coarse = (coil * np.clip(1.0 + amplitude * smooth, 0.6, 1.4)).astype(F32)
        return _interpolate_axis(_interpolate_axis(coarse, 0, ni), 1, nj)

    def series(self, plan: SeriesPlan) -> list[Volume]:
        """Rendered volumes of the plan, one per grid (several for axial blocks and the localizer)."""
        volumes = []
        for index, grid in enumerate(plan.grids):
            image = self.image(plan, grid, block=index)
            volumes.append(Volume(array=image, affine=grid.affine.copy(), info=series_info(plan, index)))
        return volumes


def _interpolate_axis(values: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation along ``axis`` from samples every ``BIAS_STEP`` to ``size`` samples."""
    index, rest = np.divmod(np.arange(size), BIAS_STEP)
    weight = (rest / BIAS_STEP).astype(F32)
    shape = [1] * values.ndim
    shape[axis] = size
    weight = weight.reshape(shape)
    low = np.take(values, index, axis=axis)
    high = np.take(values, np.minimum(index + 1, values.shape[axis] - 1), axis=axis)
    return low + weight * (high - low)


def zero_fill(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Interpolate complex slices ``image[:, :, k]`` to ``shape`` in-plane by zero-filling k-space.

    A Fermi filter on the acquired k-space (as scanners apply) softens the
    truncation ringing without removing it.
    """
    mi, mj = image.shape[:2]
    ni, nj = shape
    if (mi, mj) == (ni, nj):
        return image
    spectrum = fft.fft2(image.astype(np.complex64), axes=(0, 1), workers=-1)
    ki = np.fft.fftfreq(mi) * 2.0
    kj = np.fft.fftfreq(mj) * 2.0
    radius = np.sqrt(ki[:, None] ** 2 + kj[None, :] ** 2)
    spectrum *= (1.0 / (1.0 + np.exp((radius - FERMI_RADIUS) / FERMI_WIDTH))).astype(np.float32)[:, :, None]
    padded = np.zeros((ni, nj, image.shape[2]), dtype=np.complex64)
    pi, pj = (mi + 1) // 2, (mj + 1) // 2  # non-negative frequencies along each axis
    for src_i, dst_i in ((slice(0, pi), slice(0, pi)), (slice(pi, mi), slice(ni - (mi - pi), ni))):
        for src_j, dst_j in ((slice(0, pj), slice(0, pj)), (slice(pj, mj), slice(nj - (mj - pj), nj))):
            padded[dst_i, dst_j] = spectrum[src_i, src_j]
    out = fft.ifft2(padded, axes=(0, 1), workers=-1, overwrite_x=True)
    return out * np.float32(ni * nj / (mi * mj))


def series_info(plan: SeriesPlan, block: int) -> dict[str, Any]:
    return {
        "source": "modic.synth",
        "series": plan.name,
        "series_description": plan.protocol.description,
        "series_number": plan.protocol.number,
        "series_uid": plan.protocol.series_uid,
        "weighting": plan.weighting,
        "block": block,
    }


def derive(t1: Volume, plan: SeriesPlan) -> Volume:
    """A DERIVED\\SECONDARY copy of T1 (smoothed and rescaled, like a post-processed export)."""
    smooth = ndimage.gaussian_filter(t1.array, sigma=(0.8, 0.8, 0.0), mode="nearest")
    scaled = np.clip(np.rint(smooth * F32(1000.0 / max(float(smooth.max()), 1.0))), 0.0, MAX_STORED)
    return Volume(array=scaled.astype(F32), affine=t1.affine.copy(), info=series_info(plan, 0))
