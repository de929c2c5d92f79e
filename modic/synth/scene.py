"""Paint the anatomy at a block of sample points: tissue signals composited in painter's order.

A :class:`Block` is the set of sample points of a few output slices
(sub-slices through each slice's thickness times in-plane sub-pixels). :meth:`Scene.paint`
composites, back to front, body wall and abdomen, back muscles, the spinal
canal and its contents, ligaments, discs and vertebrae. Every structure is an
implicit shape whose approximate signed distance gives its coverage of each
sample (anti-aliased over the in-plane sample footprint), so averaging the
samples afterwards models partial volume. Compact structures are evaluated
only inside their bounding box; structures that follow the spine only where a
cheap test on ``(s, n, x)`` says they can be.

:meth:`Scene.labels` evaluates the same shapes at voxel centres (one sample
per voxel) and returns the label maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from modic.synth.anatomy import Anatomy, Disc, Frame, Lesion, SchmorlNode, Vertebra
from modic.synth.config import RenderSettings
from modic.synth.fields import Tile2D, Tile3D, random_tile, random_tile_2d
from modic.synth.shapes import (
    capsule_2d,
    coverage,
    ellipse,
    ellipsoid,
    rounded_intersection,
    slab,
    smooth_min,
    smooth_step,
)
from modic.synth.spine import SpineFrame
from modic.synth.tissues import TissueSignals

F32 = np.float32
Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]

FRAME_LATTICE_MM = 4.0
"""Spacing at which the spine frame (s, n) and its profiles are evaluated before upsampling."""
ABDOMEN_LATTICE_MM = 1.5
MUSCLE_LATTICE_MM = 1.6
TEXTURE_LATTICE_MM = 1.6
POSTERIOR_TEXTURE_LATTICE_MM = 2.5
"""Spacing at which smooth textures are evaluated before upsampling (they vary over millimetres)."""
SEPTA_DEPTH = 0.2
"""Fibrous septa in subcutaneous fat: fat fraction dip along thin sheets."""
LAMINA_SLOPE = 0.3
ROOT_LENGTH_MM = 19.0
"""Length of the exiting nerve root drawn in each foramen."""
MARROW_TILE_MM = 64.0
MUSCLE_TILE_MM = (128.0, 256.0)
ABDOMEN_TILE_MM = (160.0, 160.0, 240.0)
"""Periods of the texture tiles: larger than any structure they texture, so the repetition is not seen."""
NUCLEUS_DEGENERATION = {1: 0.0, 2: 0.12, 3: 0.55, 4: 0.9, 5: 1.0}
"""How far a nucleus of each Pfirrmann grade has turned from healthy to degenerated signal."""


@dataclass(frozen=True, eq=False)
class Block:
    """Sample points ``(t, a, b)`` -> anatomy ``(x, y, z)``.

    ``a`` and ``b`` are in-plane sample indices; the ``t``-th through-slice
    sample lies at ``positions[t]`` (sorted, in the slice-axis units of
    ``affine``), so one block can hold the sub-slices of several output slices
    (``group`` consecutive samples per slice). ``affine`` maps
    ``(a, b, position, 1)`` to anatomy. Arrays over a block have shape
    ``(nt, na, nb)``.
    """

    affine: np.ndarray
    positions: np.ndarray
    size: tuple[int, int]
    footprint: float
    group: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.positions), self.size[0], self.size[1]

    @property
    def full(self) -> Box:
        nt, na, nb = self.shape
        return (0, nt), (0, na), (0, nb)

    def coords(self, box: Box, to_frame: np.ndarray | None = None) -> list[np.ndarray]:
        """The three coordinates of the box's samples in the anatomy frame or ``to_frame`` (4x4)."""
        m = self.affine if to_frame is None else to_frame @ self.affine
        (t0, t1), (a0, a1), (b0, b1) = box
        t = self.positions[t0:t1]
        a = np.arange(a0, a1, dtype=np.float64)
        b = np.arange(b0, b1, dtype=np.float64)
        out = []
        for c in range(3):
            tt = (m[c, 2] * t + m[c, 3]).astype(F32)[:, None, None]
            aa = (m[c, 0] * a).astype(F32)[None, :, None]
            bb = (m[c, 1] * b).astype(F32)[None, None, :]
            out.append((tt + aa) + bb)
        return out

    def centre(self) -> Block:
        """The middle sub-slice of every slice (``group`` is odd, so it lies on the slice)."""
        return Block(affine=self.affine, positions=self.positions[self.group // 2 :: self.group], size=self.size,
                     footprint=self.footprint)

    def sub(self, box: Box) -> Block:
        """The samples of ``box`` as a block of their own."""
        (t0, t1), (a0, a1), (b0, b1) = box
        shift = np.eye(4)
        shift[:2, 3] = (a0, b0)
        return Block(affine=self.affine @ shift, positions=self.positions[t0:t1], size=(a1 - a0, b1 - b0),
                     footprint=self.footprint)

    def lattice(self, step: int) -> tuple[Block, Callable[[np.ndarray], np.ndarray]]:
        """Every ``step``-th sample in-plane (covering the block), and a function that upsamples
        arrays over that lattice back to this block by bilinear interpolation.

        Smooth fields (the spine frame, textures of blurry tissue) are computed on the lattice.
        """
        nt, na, nb = self.shape
        if step <= 1:
            return self, lambda values: values
        ma = -(-(na - 1) // step) + 1
        mb = -(-(nb - 1) // step) + 1
        coarse = Block(affine=self.affine @ np.diag([step, step, 1.0, 1.0]), positions=self.positions,
                       size=(ma, mb), footprint=self.footprint * step)
        ia, wa = np.divmod(np.arange(na), step)
        ib, wb = np.divmod(np.arange(nb), step)
        fa = (wa / step).astype(F32)[None, :, None]
        fb = (wb / step).astype(F32)[None, None, :]
        ia1 = np.minimum(ia + 1, ma - 1)
        ib1 = np.minimum(ib + 1, mb - 1)

        def upsample(values: np.ndarray) -> np.ndarray:
            rows = values[:, ia, :]
            rows = rows + fa * (values[:, ia1, :] - rows)
            out = rows[:, :, ib]
            return out + fb * (rows[:, :, ib1] - out)

        return coarse, upsample

    @cached_property
    def inverse(self) -> np.ndarray:
        return np.linalg.inv(self.affine)

    def box_of(self, corners: np.ndarray) -> Box | None:
        """Smallest box holding the anatomy-frame points ``corners`` (N, 3); None if outside the block."""
        inv = self.inverse
        idx = corners @ inv[:3, :3].T + inv[:3, 3]  # columns a, b, position
        lo = idx.min(axis=0)
        hi = idx.max(axis=0)
        nt, na, nb = self.shape
        a0, a1 = max(int(np.floor(lo[0])), 0), min(int(np.ceil(hi[0])) + 1, na)
        b0, b1 = max(int(np.floor(lo[1])), 0), min(int(np.ceil(hi[1])) + 1, nb)
        t0 = int(np.searchsorted(self.positions, lo[2], side="left"))
        t1 = int(np.searchsorted(self.positions, hi[2], side="right"))
        if a0 >= a1 or b0 >= b1 or t0 >= t1:
            return None
        return (t0, t1), (a0, a1), (b0, b1)


class Canvas:
    """Signal composited in painter's order: ``value <- value + alpha * (signal - value)``."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.value = np.zeros(shape, dtype=F32)

    def paint(self, box: Box, alpha: np.ndarray, signal: float | np.ndarray) -> None:
        (t0, t1), (a0, a1), (b0, b1) = box
        region = self.value[t0:t1, a0:a1, b0:b1]
        region += alpha * (F32(signal) - region) if np.isscalar(signal) else alpha * (signal - region)

    def paint_at(self, index: np.ndarray, alpha: np.ndarray, signal: float | np.ndarray) -> None:
        flat = self.value.reshape(-1)
        current = flat[index]
        flat[index] = current + alpha * (signal - current)


def _local_box(frame: Frame, u: tuple[float, float], v: tuple[float, float], w: tuple[float, float]) -> np.ndarray:
    """Anatomy-frame corners of the box ``u x v x w`` in ``frame``'s local coordinates."""
    uu, vv, ww = (np.array(r, dtype=float) for r in (u, v, w))
    uu, vv, ww = (a.ravel() for a in np.meshgrid(uu, vv, ww, indexing="ij"))
    py, pz = frame.posterior
    ay, az = frame.axis
    return np.stack([ww, frame.y + uu * py + vv * ay, frame.z + uu * pz + vv * az], axis=1)


class Scene:
    """One patient's anatomy ready to be painted at any sample points."""

    def __init__(
        self,
        anatomy: Anatomy,
        spine: SpineFrame,
        render: RenderSettings,
        rng: np.random.Generator,
    ) -> None:
        self.anatomy = anatomy
        self.spine = spine
        self.soft = anatomy.soft
        self._render = render
        self._rng_seed = int(rng.integers(2**63))
        n = len(anatomy.vertebrae)
        self._texture_offsets = rng.uniform(0.0, MARROW_TILE_MM, size=(n, 3))
        self._roots = self._sample_roots(rng)
        l3 = anatomy.vertebra("L3")
        self._front_y = l3.frame.y + l3.half_ap + self.soft.abdomen_depth
        self._front_z = l3.frame.z
        top = anatomy.top_lumbar
        self._liver_z = top.frame.z + self.soft.liver_above_top_lumbar
        lower = {v.name: v for v in anatomy.vertebrae}
        s3 = lower["S3"].frame
        self._bladder = (s3.y + 80.0 + self.soft.bladder_radius, lower["Co2"].frame.z - 0.3 * self.soft.bladder_radius)
        self._abdomen_cache: dict[tuple[float, ...], Tile3D] = {}
        self._corner_cache: dict[tuple[str, int], np.ndarray] = {}
        self._bowel_softness = render.bowel_edge_softness.draw(rng)
        self._s_iliac_artery = spine.s_vertebra[anatomy.vertebra("L4").index]
        self._s_iliac_vein = spine.s_vertebra[anatomy.vertebra("L5").index]

    def _corners(self, key: tuple[str, int], build: Callable[[], np.ndarray]) -> np.ndarray:
        """Bounding-box corners of a structure, computed once."""
        if key not in self._corner_cache:
            self._corner_cache[key] = build()
        return self._corner_cache[key]

    # Textures (built on first use, from a seed fixed at construction) ---------------------------

    @cached_property
    def _tiles(self) -> dict[str, Tile3D]:
        rng = np.random.default_rng(self._rng_seed)
        r = self._render
        marrow_step = r.marrow_texture_step
        abdomen_step = r.abdomen_step
        scale = self.anatomy.marrow.texture_scale
        fine = random_tile(rng, period_mm=(MARROW_TILE_MM,) * 3, step=(marrow_step,) * 3, sigma_mm=(scale,) * 3)
        coarse_step = MARROW_TILE_MM / 16
        coarse = random_tile(rng, period_mm=(MARROW_TILE_MM,) * 3, step=(coarse_step,) * 3,
                             sigma_mm=(4.0 * scale,) * 3)
        n = fine.values.shape[0] - 1
        coarse_fine = ndimage.zoom(coarse.values[:-1, :-1, :-1], n / 16, order=1, mode="grid-wrap", grid_mode=True)
        mixed = (0.85 * fine.values + 0.4 * np.pad(coarse_fine, [(0, 1)] * 3, mode="wrap")).astype(F32)
        mixed /= max(float(mixed.std()), 1e-6)
        return {
            "marrow": Tile3D(step=fine.step, values=mixed),
            "bowel": random_tile(rng, period_mm=ABDOMEN_TILE_MM, step=(abdomen_step,) * 3, sigma_mm=(4.5,) * 3),
            "content": random_tile(rng, period_mm=ABDOMEN_TILE_MM, step=(abdomen_step,) * 3, sigma_mm=(7.0,) * 3),
        }

    @cached_property
    def _planes(self) -> dict[str, Tile2D]:
        """Textures of soft tissue that change little across a sagittal slice: (y, z) tiles."""
        rng = np.random.default_rng([self._rng_seed, 1])
        step = tuple(self._render.muscle_texture_step)
        return {
            "muscle": random_tile_2d(rng, period_mm=MUSCLE_TILE_MM, step=step, sigma_mm=(1.2, 9.0)),
            "septa": random_tile_2d(rng, period_mm=MUSCLE_TILE_MM, step=step, sigma_mm=(3.0, 8.0)),
        }

    def _abdomen_tile(self, sig: TissueSignals) -> Tile3D:
        """Signal of bowel loops in mesenteric fat for one sequence (cached per sequence)."""
        key = (sig.fat, *sorted(sig.water.values()))
        if key not in self._abdomen_cache:
            bowel = self._tiles["bowel"].values
            content = self._tiles["content"].values
            fill = F32(self.soft.bowel_fill)
            soft = F32(self._bowel_softness)
            loop = smooth_step(bowel - fill, 0.3 * soft)
            lumen = smooth_step(bowel - fill - F32(0.45), 0.3 * soft)
            gas = smooth_step(content - F32(1.0), 0.4 * soft)
            fluid = smooth_step(F32(-0.3) - content, 0.5 * soft) * (F32(1.0) - gas)
            stool = F32(1.0) - gas - fluid
            inside = gas * F32(sig["bowel_gas"]) + fluid * F32(sig["bowel_fluid"]) + stool * F32(sig["stool"])
            wall = F32(sig["bowel_wall"])
            fat = F32(sig["mesentery"])
            signal = fat + loop * (wall + lumen * (inside - wall) - fat)
            self._abdomen_cache[key] = Tile3D(step=self._tiles["bowel"].step, values=signal.astype(F32))
        return self._abdomen_cache[key]

    def _sample_roots(self, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
        """Cauda equina roots: (lateral position, AP position in the sac, exit level s, side)."""
        exits = sorted(
            self.spine.s_disc[(d.lower, d.upper)]
            for d in self.anatomy.discs
            if self.spine.s_disc[(d.lower, d.upper)] < self.spine.s_conus
        )
        exits = [s for s in exits if s > self.spine.s_sac_end - 40.0] or [self.spine.s_sac_end]
        roots = []
        for k in range(self.anatomy.canal.roots):
            side = -1.0 if k % 2 else 1.0
            # One pair leaves at each level from the bottom up; the rest run to the end of the sac.
            level = k // 2
            exit_s = exits[level] + float(rng.uniform(2.0, 8.0)) if level < len(exits) else self.spine.s_sac_end - 10.0
            roots.append((side * float(rng.uniform(0.05, 0.75)), float(rng.uniform(0.0, 0.7)), exit_s, side))
        return roots

    # Body outline ------------------------------------------------------------------------------

    def back_surface_y(self) -> float:
        """Anatomy-frame y of the skin of the back at the L3 level (where a spine coil sits)."""
        s = self.spine.s_vertebra[self.anatomy.vertebra("L3").index]
        n = float(self.spine.profiles["skin_back"](np.array([s], dtype=F32))[0])
        return self.spine.point(s, n)[0]

    def front(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Anterior skin surface y at height z and lateral position x."""
        dz = z - F32(self._front_z)
        return F32(self._front_y) - F32(self.soft.belly_curvature) * dz * dz - F32(0.002) * x * x

    # Painting ------------------------------------------------------------------------------------

    def paint(self, block: Block, sig: TissueSignals) -> np.ndarray:
        """Composited signal at every sample of ``block`` for the tissue signals ``sig``."""
        canvas = Canvas(block.shape)
        self._paint_soft_tissue(block, sig, canvas)
        for disc in self.anatomy.discs:
            self._paint_disc(block, sig, canvas, disc)
        for vertebra in self.anatomy.vertebrae:
            self._paint_vertebra(block, sig, canvas, vertebra)
        return canvas.value

    def _paint_soft_tissue(self, block: Block, sig: TissueSignals, canvas: Canvas) -> None:
        """Body wall, abdomen and back muscles (weak lateral dependence: evaluated on the centre sub-slice
        and repeated through the slice), then the strongly lateral structures on the full block."""
        fp = block.footprint
        soft = self.soft
        p = self.spine.profiles
        mid = block.centre()
        whole = mid.full
        x, y, z = mid.coords(whole)
        coarse, up = mid.lattice(max(1, round(FRAME_LATTICE_MM / fp)))
        _, yc, zc = coarse.coords(coarse.full)
        sc, nc = self.spine.sn(yc, zc)
        post_c = p["posterior_wall"](sc)
        behind = up(nc - post_c)
        ax = np.abs(x)

        # These layers are the bottom of the stack: composite them on one sub-slice, then copy through.
        base = Canvas(mid.shape)
        d_back = (up(self.spine.back_skin(zc)) + F32(0.004) * x * x) - y
        d_front = y - self.front(z, x)
        d_side = ax - F32(soft.body_half_width)
        d_body = np.maximum(np.maximum(d_back, d_front), d_side)
        base.paint(whole, coverage(d_body, fp), sig["skin"])
        fine, up_fine = mid.lattice(max(1, round(MUSCLE_LATTICE_MM / fp)))
        fx, fy, fz = fine.coords(fine.full)
        shift = fx * F32(0.7)
        septa = up_fine(self._planes["septa"](fy + shift, fz - shift))
        septa = F32(SEPTA_DEPTH) * np.exp(-(septa * septa) * F32(1.0 / 0.002))
        base.paint(whole, coverage(d_body + F32(soft.skin), fp), sig.with_fat("skin", F32(1.0) - septa))

        fat = F32(soft.belly_fat)
        d_wall = np.maximum(np.maximum(d_front + fat, d_side + fat), behind)
        base.paint(whole, coverage(d_wall, fp), sig["muscle"])
        deep = fat + F32(soft.abdominal_wall_muscle)
        d_cavity = np.maximum(np.maximum(d_front + deep, d_side + deep), behind - F32(4.0))
        alpha = coverage(d_cavity, fp)
        if alpha.any():
            medium, up_medium = mid.lattice(max(1, round(ABDOMEN_LATTICE_MM / fp)))
            base.paint(whole, alpha, up_medium(self._abdomen(sig, medium)))

        back_c = p["muscle_back"](sc)
        half_c = p["muscle_half"](sc)
        half = up(half_c)
        q = ax / np.maximum(half, F32(1.0))
        q2 = q * q
        # Behind the posterior wall: 0 at the wall, back - post at the muscles' posterior surface.
        depth = up(back_c - post_c)
        d = np.maximum(np.maximum(ax - half, F32(-6.0) - behind), behind - depth * (F32(1.0) - F32(0.55) * q2 * q2))
        alpha = coverage(d, fp)
        if alpha.any():
            streak = up_fine(self._planes["muscle"](fy - shift, fz + shift))
            ff = F32(0.04) + F32(soft.muscle_fat_streaks) * smooth_step(streak - F32(0.9), 0.8)
            base.paint(whole, alpha, sig.with_fat("muscle", ff))
        nt, na, nb = canvas.value.shape
        canvas.value.reshape(-1, block.group, na, nb)[...] = base.value[:, None]

        # Strongly lateral structures: the spine frame from the centre sub-slice, x per sub-slice.
        s2, n2 = up(sc), up(nc)
        mask = (behind > -45.0) & (behind < 75.0)
        pix = np.flatnonzero(mask.reshape(-1))
        if not pix.size:
            return
        plane = block.size[0] * block.size[1]
        group = block.group
        k, q = np.divmod(pix, plane)
        index = (k * group * plane + q)[None, :] + (np.arange(group) * plane)[:, None]
        x3 = block.coords(block.full)[0].reshape(-1)[index]
        ax3 = np.abs(x3)
        ss, ns = s2.reshape(-1)[pix], n2.reshape(-1)[pix]
        post = p["posterior_wall"](ss)
        ant = p["anterior_wall"](ss)
        radius = p["psoas"](ss)
        cols = np.flatnonzero(radius > 1.0)
        if cols.size:
            r = radius[cols]
            centre_n = ant[cols] + F32(0.35) * (post[cols] - ant[cols])
            centre_x = p["half_width"](ss[cols]) + F32(0.55) * r
            d = ellipse(ax3[:, cols] - centre_x, ns[cols] - centre_n, r * F32(0.85), r)
            canvas.paint_at(index[:, cols], coverage(d, fp), sig["muscle"])
        rel = ns - ant
        cols = np.flatnonzero((rel > -3.0) & (rel < 3.0))
        if cols.size:
            d = np.maximum(np.maximum(ax3[:, cols] - F32(12.0), F32(-1.5) - rel[cols]), rel[cols] - F32(1.0))
            canvas.paint_at(index[:, cols], coverage(d, fp), sig["ligament"])
        rel = ns - post
        cols = np.flatnonzero((rel > -8.0) & (rel < 70.0))
        if cols.size:
            self._paint_canal(sig, canvas, fp, index[:, cols], x3[:, cols], ss[cols], rel[cols], post[cols])

    def _abdomen(self, sig: TissueSignals, block: Block) -> np.ndarray:
        """Abdominal and pelvic contents at every sample: bowel in fat, retroperitoneal fat, vessels, liver, bladder."""
        fp = block.footprint
        x, y, z = block.coords(block.full)
        s, n = self.spine.sn(y, z)
        p = self.spine.profiles
        values = self._abdomen_tile(sig)(x, y, z)
        fat = F32(sig["fat"])
        ahead = p["anterior_wall"](s) - n  # distance in front of the vertebral bodies
        retro = smooth_step(F32(10.0) - ahead, 10.0)
        values += retro * (fat - values)
        lobe = np.sin(y * F32(0.05) + x * F32(0.03))
        liver = smooth_step(z - F32(self._liver_z) + F32(12.0) * lobe, 8.0) * smooth_step(ahead - F32(14.0), 8.0)
        liver *= smooth_step(x + F32(45.0), 12.0)
        values += liver * (F32(sig["liver"]) - values)
        by, bz = self._bladder
        r = self.soft.bladder_radius
        d_bladder = ellipsoid(x, y - F32(by), z - F32(bz), 1.2 * r, r, 0.9 * r)
        values += coverage(d_bladder, fp) * (F32(sig["urine"]) - values)
        near = np.flatnonzero(((ahead > -5.0) & (ahead < 40.0)).reshape(-1))
        if near.size:
            sn, an, xn = (a.reshape(-1)[near] for a in (s, ahead, x))
            flat = values.reshape(-1)
            for centre_x, radius, split_s, squash, tissue in ((-11.0, 9.5, self._s_iliac_artery, 1.0, "artery"),
                                                              (17.0, 10.5, self._s_iliac_vein, 1.25, "vena_cava")):
                below = np.maximum(F32(split_s) - sn, F32(0.0))
                vessel = np.full(near.shape, np.inf, dtype=F32)
                for side in (-1.0, 1.0):
                    cx = np.where(below > 0, F32(side * 9.0) + F32(side * 0.45) * below, F32(centre_x))
                    rad = np.where(below > 0, F32(radius * 0.6), F32(radius))
                    d = np.sqrt((xn - cx) ** 2 + ((an - rad - F32(2.0)) * F32(squash)) ** 2) - rad
                    vessel = np.minimum(vessel, d)
                flat[near] += coverage(vessel, fp) * (F32(sig[tissue]) - flat[near])
        return values

    def _paint_canal(
        self,
        sig: TissueSignals,
        canvas: Canvas,
        fp: float,
        index: np.ndarray,
        x: np.ndarray,
        s: np.ndarray,
        rel: np.ndarray,
        post: np.ndarray,
    ) -> None:
        """Epidural fat, ligaments, dural sac, cord, cauda equina and the interspinous region.

        ``index`` and ``x`` have shape (sub-slices, columns): the block samples near the canal and
        their lateral position; ``s``, ``rel`` (``n`` relative to the posterior wall of the bodies and
        discs) and ``post`` are per column.
        """
        p = self.spine.profiles
        canal = self.anatomy.canal
        ax = np.abs(x)
        depth = p["canal_depth"](s)
        half = p["canal_half"](s)
        has_arch = p["interspinous"](s)

        lateral = np.flatnonzero(rel < depth + 4.0)
        if lateral.size:
            i, a, r, dp, h = index[:, lateral], ax[:, lateral], rel[lateral], depth[lateral], half[lateral]
            d = rounded_intersection(a - (h + F32(8.0)), np.maximum(F32(-1.5) - r, r - (dp - F32(4.0))), 4.0)
            d = np.minimum(d, np.maximum(np.maximum(a - h, F32(-1.0) - r), r - dp))
            d = np.maximum(d, F32(0.5) - dp)
            canvas.paint_at(i, coverage(d, fp), sig["fat"])
            lf = F32(canal.ligamentum_flavum)
            d = np.maximum(np.maximum(a - (h + F32(3.0)), (dp - lf) - r), r - (dp + F32(1.5)))
            canvas.paint_at(i, coverage(d, fp) * has_arch[lateral], sig["ligamentum_flavum"])
            d = np.maximum(np.maximum(a - F32(6.0), F32(-1.2) - r), r - F32(0.8))
            canvas.paint_at(i, coverage(d, fp), sig["ligament"])

        scale = p["sac_scale"](s)
        cols = np.flatnonzero((scale > 0.05) & (rel < depth + 2.0))
        if cols.size:
            i, xs, r, sc = index[:, cols], x[:, cols], rel[cols], s[cols]
            sac_depth = depth[cols] * F32(canal.sac_depth_fraction) * scale[cols]
            sac_centre = p["epidural"](sc) + F32(0.5) * sac_depth
            sac_half = np.maximum((half[cols] - F32(1.2)) * scale[cols], F32(0.1))
            d_sac = ellipse(r - sac_centre, xs, np.maximum(F32(0.5) * sac_depth, F32(0.1)), sac_half)
            canvas.paint_at(i, coverage(d_sac, fp), sig["csf"])
            radius = p["cord"](sc)
            inside = np.flatnonzero(radius > 0.2)
            if inside.size:
                rr = radius[inside]
                centre = sac_centre[inside] + F32(0.1) * sac_depth[inside]
                d = ellipse(r[inside] - centre, xs[:, inside], rr, rr * F32(1.3))
                canvas.paint_at(i[:, inside], coverage(d, fp), sig["cord"])
            tail = np.flatnonzero(sc < self.spine.s_conus + 5.0)
            if tail.size:
                st, xt = sc[tail], xs[:, tail]
                rs = r[tail] - sac_centre[tail]
                hd = F32(0.5) * sac_depth[tail]
                hw = sac_half[tail]
                roots = np.full(xt.shape, np.inf, dtype=F32)
                for lateral_pos, ap, exit_s, side in self._roots:
                    drift = smooth_step(F32(exit_s + 18.0) - st, 36.0)
                    cx = (F32(lateral_pos) + drift * (F32(0.92 * side) - F32(lateral_pos))) * hw
                    cn = (F32(ap) - drift * F32(ap + 0.3)) * hd * F32(0.8)
                    dr = np.sqrt((xt - cx) ** 2 + (rs - cn) ** 2) - F32(canal.root_radius)
                    roots = np.minimum(roots, np.maximum(dr, F32(exit_s) - st))
                canvas.paint_at(i[:, tail], coverage(roots, fp), sig["nerve"])

        arch = np.flatnonzero((has_arch > 0) & (rel > depth))
        if arch.size:
            tip = p["spinous_tip"](s[arch]) - post[arch]
            a, r, dp, i = ax[:, arch], rel[arch], depth[arch], index[:, arch]
            d = np.maximum(np.maximum(a - F32(2.6), (dp + F32(1.0)) - r), r - tip)
            canvas.paint_at(i, coverage(d, fp) * has_arch[arch], sig.with_fat("ligament", F32(0.35)))
            d = np.maximum(np.maximum(a - F32(4.0), (tip - F32(1.5)) - r), r - (tip + F32(2.5)))
            canvas.paint_at(i, coverage(d, fp) * has_arch[arch], sig["ligament"])

    # Discs --------------------------------------------------------------------------------------

    def _disc_shape(self, block: Block, disc: Disc) -> tuple[Box, list[np.ndarray], np.ndarray] | None:
        below = self.anatomy.vertebrae[disc.lower]
        above = self.anatomy.vertebrae[disc.upper]
        reach_u = disc.half_ap * (1.0 + disc.bulge) + 4.0
        reach_w = disc.half_width * (1.0 + disc.bulge) + 4.0
        reach_v = disc.height / 2 + max(below.concavity, above.concavity) + reach_u * 0.3 + 4.0
        box = block.box_of(self._corners(("disc", disc.lower), lambda: _local_box(
            disc.frame, (-reach_u, reach_u), (-reach_v, reach_v), (-reach_w, reach_w))))
        if box is None:
            return None
        u, v, w = block.coords(box, disc.frame.to_local())
        ub, vb, _ = block.coords(box, below.frame.to_local())
        ua, va, _ = block.coords(box, above.frame.to_local())
        vertical = np.maximum(below.top(ub, w) - vb, va - above.bottom(ua, w))
        t = np.clip(v * F32(2.0 / max(disc.height, 0.5)), F32(-1.0), F32(1.0))
        grow = F32(1.0) + F32(disc.bulge) * (F32(1.0) - t * t)
        radial = ellipse(u, w, F32(disc.half_ap) * grow, F32(disc.half_width) * grow)
        return box, [u, v, w], rounded_intersection(vertical, radial, 1.0)

    def _paint_disc(self, block: Block, sig: TissueSignals, canvas: Canvas, disc: Disc) -> None:
        shape = self._disc_shape(block, disc)
        if shape is None:
            return
        box, (u, v, w), d = shape
        alpha = coverage(d, block.footprint)
        if disc.kind == "remnant":
            canvas.paint(box, alpha, sig["disc_remnant"])
            return
        grade = disc.pfirrmann
        mix = NUCLEUS_DEGENERATION[grade]
        nucleus_signal = F32(sig["nucleus"] + mix * (sig["nucleus_degenerated"] - sig["nucleus"]))
        annulus = F32(sig["annulus"])
        depth = disc.half_ap * disc.nucleus_depth
        height = max(disc.height / 2 * disc.nucleus_height, 0.6)
        dn = ellipsoid(u - F32(disc.nucleus_offset * disc.half_ap), v, w, depth, height,
                       disc.half_width * disc.nucleus_depth)
        weight = smooth_step(-dn, 4.0) * F32(0.35 if grade == 5 else 1.0)
        if grade >= 2:
            cleft = F32(disc.cleft) * np.exp(-(v * v) * F32(1.0 / 0.8))
            weight = weight * (F32(1.0) - cleft)
        canvas.paint(box, alpha, annulus + weight * (nucleus_signal - annulus))

    # Vertebrae ----------------------------------------------------------------------------------

    def _body_sdf(self, vertebra: Vertebra, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Signed distance to the vertebral body: waisted elliptic cylinder between the endplates."""
        t = np.clip(v * F32(1.0 / vertebra.half_height), F32(-1.0), F32(1.0))
        shrink = F32(1.0) - F32(vertebra.waist) * (F32(1.0) - t * t)
        radial = ellipse(u, w, F32(vertebra.half_ap) * shrink, F32(vertebra.half_width) * shrink)
        vertical = np.maximum(v - vertebra.top(u, w), vertebra.bottom(u, w) - v)
        return rounded_intersection(radial, vertical, vertebra.corner)

    def _body_box(self, block: Block, vertebra: Vertebra) -> Box | None:
        reach_u = vertebra.half_ap + 3.0
        reach_w = vertebra.half_width + 3.0
        reach_v = vertebra.half_height + abs(math.tan(vertebra.wedge / 2)) * vertebra.half_ap + 3.0
        return block.box_of(self._corners(("body", vertebra.index), lambda: _local_box(
            vertebra.frame, (-reach_u, reach_u), (-reach_v, reach_v), (-reach_w, reach_w))))

    def _marrow_fat(
        self, vertebra: Vertebra, block: Block, box: Box, *, lattice_mm: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fat fraction of normal marrow with its texture over ``box``, and the texture itself.

        The texture is evaluated every ``lattice_mm`` (default: the body texture lattice) and upsampled.
        """
        sub = block.sub(box)
        lattice, up = sub.lattice(max(1, round((lattice_mm or TEXTURE_LATTICE_MM) / block.footprint)))
        u, v, w = lattice.coords(lattice.full, vertebra.frame.to_local())
        ox, oy, oz = self._texture_offsets[vertebra.index]
        texture = up(self._tiles["marrow"](w + F32(ox), u + F32(oy), v + F32(oz)))
        base = vertebra.fat_fraction + (self.anatomy.marrow.posterior_element_offset if lattice_mm else 0.0)
        ff = np.clip(F32(base) + F32(self.anatomy.marrow.texture_amplitude) * texture, F32(0.02), F32(0.98))
        return ff, texture

    def _lesion_weights(
        self, lesion: Lesion, vertebra: Vertebra, u: np.ndarray, v: np.ndarray, w: np.ndarray
    ) -> list[tuple[int, np.ndarray]]:
        """Weight (0..1) of each type of the Modic band at every sample."""
        spec = lesion.spec
        if spec.side == "superior":
            depth = vertebra.top(u, w) - v
        else:
            depth = v - vertebra.bottom(u, w)
        p1, p2, p3 = lesion.phases
        wobble = np.sin(u * F32(0.35) + F32(p1)) * np.cos(w * F32(0.22) + F32(p2)) + F32(0.5) * np.sin(
            u * F32(0.9) + w * F32(0.5) + F32(p3))
        band = F32(lesion.depth_fraction * vertebra.height) * (F32(1.0) + F32(lesion.irregularity) * wobble)
        half_ap = F32(lesion.ap_fraction * vertebra.half_ap)
        weight = smooth_step(band - depth, 3.5)
        weight *= smooth_step(half_ap - np.abs(u - F32(lesion.ap_centre)), 3.0)
        weight *= smooth_step(F32(lesion.lateral_fraction * vertebra.half_width) - np.abs(w), 4.0)
        parts = spec.parts
        if len(parts) == 1:
            return [(parts[0], weight)]
        first = weight * smooth_step(band * F32(lesion.split) - depth, 2.5)
        return [(parts[0], first), (parts[1], weight - first)]

    def _marrow_signal(
        self, sig: TissueSignals, vertebra: Vertebra, block: Block, box: Box, u: np.ndarray, v: np.ndarray,
        w: np.ndarray,
    ) -> np.ndarray:
        ff, texture = self._marrow_fat(vertebra, block, box)
        value = sig.with_fat("marrow", ff)
        for lesion in self.anatomy.lesions:
            if lesion.vertebra != vertebra.index:
                continue
            for modic_type, weight in self._lesion_weights(lesion, vertebra, u, v, w):
                name = f"modic{modic_type}"
                base = sig.tissues[name].fat_fraction
                lesion_ff = np.clip(F32(base) + F32(0.5 * self.anatomy.marrow.texture_amplitude) * texture,
                                    F32(0.0), F32(1.0))
                value = value + weight * (sig.with_fat(name, lesion_ff) - value)
        return value

    def _paint_vertebra(self, block: Block, sig: TissueSignals, canvas: Canvas, vertebra: Vertebra) -> None:
        fp = block.footprint
        if vertebra.ala_half_width > 0:
            self._paint_ala(block, sig, canvas, vertebra)
        if vertebra.posterior is not None:
            self._paint_posterior(block, sig, canvas, vertebra)
        box = self._body_box(block, vertebra)
        if box is None:
            return
        u, v, w = block.coords(box, vertebra.frame.to_local())
        d = self._body_sdf(vertebra, u, v, w)
        canvas.paint(box, coverage(d, fp), sig["cortex"])
        marrow = self._marrow_signal(sig, vertebra, block, box, u, v, w)
        canvas.paint(box, coverage(d + F32(vertebra.cortex), fp), marrow)
        if vertebra.basivertebral_vein:
            a = F32(vertebra.half_ap)
            widen = np.clip((u - F32(0.55) * a) * F32(1.0 / (0.45 * vertebra.half_ap)), F32(0.2), F32(1.0))
            wall = a * F32(1.0 - vertebra.waist) - F32(vertebra.cortex)
            d_vein = np.maximum(ellipse(v, w, F32(1.6) * widen, F32(2.2)), slab(u, F32(0.55) * a, wall))
            canvas.paint(box, coverage(d_vein, fp), sig["vein"])
        for node in self.anatomy.schmorl_nodes:
            if node.vertebra == vertebra.index:
                self._paint_schmorl(sig, canvas, fp, box, vertebra, node, u, v, w, d)

    def _schmorl_sdf(
        self, vertebra: Vertebra, node: SchmorlNode, u: np.ndarray, v: np.ndarray, w: np.ndarray
    ) -> np.ndarray:
        uu, ww = np.float32(node.u), np.float32(node.w)
        if node.side == "superior":
            centre = float(vertebra.top(uu, ww)) - 0.35 * node.radius
        else:
            centre = float(vertebra.bottom(uu, ww)) + 0.35 * node.radius
        return ellipsoid(u - uu, v - F32(centre), w - ww, node.radius, node.radius * 1.1, node.radius)

    def _paint_schmorl(
        self,
        sig: TissueSignals,
        canvas: Canvas,
        fp: float,
        box: Box,
        vertebra: Vertebra,
        node: SchmorlNode,
        u: np.ndarray,
        v: np.ndarray,
        w: np.ndarray,
        body: np.ndarray,
    ) -> None:
        d = self._schmorl_sdf(vertebra, node, u, v, w)
        rim = np.maximum(d - F32(1.2), body)
        canvas.paint(box, coverage(rim, fp), sig["cortex"])
        canvas.paint(box, coverage(d, fp), sig["nucleus_degenerated"])

    def _paint_ala(self, block: Block, sig: TissueSignals, canvas: Canvas, vertebra: Vertebra) -> None:
        a, b, h = vertebra.half_ap, vertebra.half_width, vertebra.half_height
        depth = vertebra.posterior.canal_depth if vertebra.posterior else 0.0
        wide = vertebra.ala_half_width
        box = block.box_of(self._corners(("ala", vertebra.index), lambda: _local_box(
            vertebra.frame, (-0.6 * a - 2, a + depth + 2), (-h - 3, h + 3), (-wide - 2, wide + 2))))
        if box is None:
            return
        u, v, w = block.coords(box, vertebra.frame.to_local())
        aw = np.abs(w)
        profile = rounded_intersection(
            slab(u, F32(-0.55 * a), F32(a + 0.7 * depth)), slab(aw, F32(0.45 * b), F32(wide)), 6.0
        )
        top = h + (1.5 if vertebra.name != "S1" else -1.0)
        d = rounded_intersection(profile, slab(v, F32(-h - 1.5), F32(top)), 3.0)
        canvas.paint(box, coverage(d, block.footprint), sig["cortex"])
        ff, _ = self._marrow_fat(vertebra, block, box, lattice_mm=POSTERIOR_TEXTURE_LATTICE_MM)
        canvas.paint(box, coverage(d + F32(vertebra.posterior_cortex), block.footprint), sig.with_fat("marrow", ff))

    def _posterior_sdf(self, vertebra: Vertebra, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Union of pedicles, laminae, spinous, articular and transverse processes."""
        pe = vertebra.posterior
        assert pe is not None
        a = vertebra.half_ap
        aw = np.abs(w)
        back = a + pe.pedicle_length
        pedicle = rounded_intersection(
            ellipse(aw - F32(pe.pedicle_offset), v - F32(pe.pedicle_level), F32(pe.pedicle_radius_lateral),
                    F32(pe.pedicle_radius_vertical)),
            slab(u, F32(a - 4.0), F32(back + 1.0)),
            2.5,
        )
        junction = a + pe.canal_depth + 0.5 * pe.lamina_thickness
        # Laminae are shingled: their lower edge lies more posterior than their upper edge.
        sheared = u - F32(LAMINA_SLOPE) * (F32(pe.lamina_top) - v)
        lamina = rounded_intersection(
            capsule_2d(sheared, aw, (back, pe.pedicle_offset), (junction, 0.0), 0.5 * pe.lamina_thickness),
            slab(v, F32(pe.lamina_bottom), F32(pe.lamina_top)),
            2.0,
        )
        shape = smooth_min(pedicle, lamina, 2.0)
        c, s_ = math.cos(pe.spinous_angle), math.sin(pe.spinous_angle)
        du = u - F32(junction - 1.0)
        dv = v - F32(pe.spinous_level)
        along = du * F32(c) - dv * F32(s_)
        across = du * F32(s_) + dv * F32(c)
        spinous = rounded_intersection(
            slab(along, F32(0.0), F32(pe.spinous_length)),
            np.abs(across)
            - F32(0.5 * pe.spinous_height)
            * (F32(0.8) + F32(0.2) * np.clip(along / F32(pe.spinous_length), F32(0), F32(1))),
            5.0,
        )
        spinous = rounded_intersection(spinous, aw - F32(0.5 * pe.spinous_thickness), 1.5)
        shape = smooth_min(shape, spinous, 2.0)
        r = pe.facet_radius
        if pe.superior_facet_top is not None:
            sap = rounded_intersection(
                ellipse(u - F32(back + 1.0), aw - F32(pe.pedicle_offset + 2.5), F32(r), F32(0.8 * r)),
                slab(v, F32(pe.pedicle_level), F32(pe.superior_facet_top)),
                3.0,
            )
            shape = smooth_min(shape, sap, 2.0)
        if pe.inferior_facet_bottom is not None:
            iap = rounded_intersection(
                ellipse(u - F32(back + 5.5), aw - F32(pe.pedicle_offset - 1.5), F32(r), F32(0.8 * r)),
                slab(v, F32(pe.inferior_facet_bottom), F32(-0.1 * vertebra.half_height)),
                3.0,
            )
            shape = smooth_min(shape, iap, 2.0)
        if pe.transverse_length > 0:
            tp = rounded_intersection(
                ellipse(u - F32(a + 0.55 * pe.pedicle_length), v - F32(0.15 * vertebra.half_height),
                        F32(pe.transverse_radius), F32(1.3 * pe.transverse_radius)),
                slab(aw, F32(pe.pedicle_offset), F32(pe.pedicle_offset + pe.transverse_length)),
                2.0,
            )
            shape = smooth_min(shape, tp, 2.0)
        return shape

    def _posterior_box(self, block: Block, vertebra: Vertebra) -> Box | None:
        pe = vertebra.posterior
        assert pe is not None
        a, h = vertebra.half_ap, vertebra.half_height
        junction = a + pe.canal_depth + pe.lamina_thickness
        tip_u = junction + pe.spinous_length * math.cos(pe.spinous_angle) + 0.5 * pe.spinous_height + 3.0
        tip_v = pe.spinous_level - pe.spinous_length * math.sin(pe.spinous_angle) - 0.5 * pe.spinous_height - 3.0
        v_low = min(tip_v, pe.lamina_bottom - 3.0, (pe.inferior_facet_bottom or 0.0) - 3.0, -h - 3.0)
        v_high = max(pe.lamina_top + 3.0, (pe.superior_facet_top or 0.0) + 3.0, pe.spinous_level + pe.spinous_height)
        w_reach = pe.pedicle_offset + max(pe.transverse_length, pe.pedicle_radius_lateral + 6.0) + 3.0
        return block.box_of(self._corners(("posterior", vertebra.index), lambda: _local_box(
            vertebra.frame, (a - 6.0, tip_u), (v_low, v_high), (-w_reach, w_reach))))

    def _paint_posterior(self, block: Block, sig: TissueSignals, canvas: Canvas, vertebra: Vertebra) -> None:
        box = self._posterior_box(block, vertebra)
        if box is None:
            return
        pe = vertebra.posterior
        assert pe is not None
        fp = block.footprint
        u, v, w = block.coords(box, vertebra.frame.to_local())
        if vertebra.kind != "coccygeal":
            a = vertebra.half_ap
            level = pe.pedicle_level - pe.pedicle_radius_vertical - 3.5
            aw = np.abs(w)
            # The exiting root runs laterally and downwards under the pedicle: a tube along w.
            start = pe.canal_half_width - 1.0
            t = np.clip((aw - F32(start)) * F32(1.0 / ROOT_LENGTH_MM), F32(0.0), F32(1.0))
            dv = v - (F32(level + 1.0) - F32(6.0) * t)
            du = u - (F32(a + 2.5) + F32(1.5) * t)
            root = np.maximum(np.sqrt(du * du + dv * dv) - F32(2.4), slab(aw, F32(start), F32(start + ROOT_LENGTH_MM)))
            canvas.paint(box, coverage(root, fp), sig["nerve"])
        d = self._posterior_sdf(vertebra, u, v, w)
        canvas.paint(box, coverage(d, fp), sig["cortex"])
        ff, _ = self._marrow_fat(vertebra, block, box, lattice_mm=POSTERIOR_TEXTURE_LATTICE_MM)
        canvas.paint(box, coverage(d + F32(vertebra.posterior_cortex), fp), sig.with_fat("marrow", ff))

    # Labels -------------------------------------------------------------------------------------

    def labels(self, block: Block) -> dict[str, np.ndarray]:
        """Semantic, vertebra-instance, disc-instance and Modic label maps at the samples of ``block``."""
        shape = block.shape
        semantic = np.zeros(shape, dtype=np.uint8)
        vertebrae = np.zeros(shape, dtype=np.uint8)
        discs = np.zeros(shape, dtype=np.uint8)
        modic = np.zeros(shape, dtype=np.uint8)
        for disc in self.anatomy.discs:
            if disc.label <= 0:
                continue
            found = self._disc_shape(block, disc)
            if found is None:
                continue
            box, _, d = found
            sl = tuple(slice(*r) for r in box)
            inside = d < 0
            semantic[sl][inside] = 2
            discs[sl][inside] = disc.label
        for vertebra in self.anatomy.vertebrae:
            if not vertebra.labelled:
                continue
            box = self._body_box(block, vertebra)
            if box is None:
                continue
            sl = tuple(slice(*r) for r in box)
            u, v, w = block.coords(box, vertebra.frame.to_local())
            d = self._body_sdf(vertebra, u, v, w)
            inside = d < 0
            semantic[sl][inside] = 3 if vertebra.label == 1 else 1
            vertebrae[sl][inside] = vertebra.label
            discs[sl][inside] = 0
            marrow = d < -vertebra.cortex
            for lesion in self.anatomy.lesions:
                if lesion.vertebra != vertebra.index:
                    continue
                for modic_type, weight in self._lesion_weights(lesion, vertebra, u, v, w):
                    modic[sl][marrow & (weight > 0.5)] = modic_type
            for node in self.anatomy.schmorl_nodes:
                if node.vertebra != vertebra.index:
                    continue
                herniated = (self._schmorl_sdf(vertebra, node, u, v, w) < 0) & inside
                semantic[sl][herniated] = 2
                vertebrae[sl][herniated] = 0
                discs[sl][herniated] = node.disc
                modic[sl][herniated] = 0
        return {"semantic": semantic, "vertebrae": vertebrae, "discs": discs, "modic": modic}
