"""The anatomical model of one synthetic patient, in physical millimetres.

Coordinates are in the *anatomy frame*: RAS+ axes (x to the patient's right,
y anterior, z superior) with the origin at the centre of the S1 superior
endplate and the spine's mid-sagittal plane at ``x = 0``. The patient's pose
in the scanner (a rigid transform to world RAS) is applied by the
acquisition planning, not here.

Each vertebra and disc has a sagittal-plane :class:`Frame`: its centre and the
tilt of its cranial axis. Local coordinates are ``u`` (posterior), ``v``
(cranial along the axis) and ``w`` (= x, lateral). The column is built by
stacking wedge-shaped discs and bodies upwards from the S1 endplate, which is
tilted by the sacral slope, and downwards through the sacrum and coccyx, so
lordosis, kyphosis and the sacral curve come from the wedge angles.

Vertebrae are named counting from the bottom (S1, L5, L4, ...) whatever their
anatomical type, like a radiologist without a whole-spine scout; ``kind`` keeps
the anatomical type (``lumbar`` for all lumbar-type vertebrae, even a sixth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from modic.errors import UsageError
from modic.synth.config import (
    DiscSettings,
    ModicSettings,
    PosteriorElementSettings,
    SynthSettings,
    VertebraSize,
    chance,
)
from modic.synth.lesions import ModicSpec

LOWER_SACRAL_NAMES = ("S2", "S3", "S4", "S5", "Co1", "Co2", "Co3")


def level_names(count: int) -> list[str]:
    """Names of ``count`` vertebrae counted from S1 upwards: S1, L5, ..., L1, T12, ..., T1."""
    names = ["S1"] + [f"L{i}" for i in range(5, 0, -1)] + [f"T{i}" for i in range(12, 0, -1)]
    if count > len(names):
        raise ValueError(f"cannot name {count} vertebrae above the sacrum")
    return names[:count]


@dataclass(frozen=True)
class Variant:
    """Segmentation variants that a pipeline must cope with (and may flag)."""

    lumbar_count: int = 5
    transitional_s1: bool = False
    sacrum_in_fov: bool = True

    def __post_init__(self) -> None:
        if self.lumbar_count not in (4, 5, 6):
            raise UsageError(f"lumbar_count {self.lumbar_count!r} is not supported; use 4, 5 or 6")


@dataclass(frozen=True)
class Frame:
    """A sagittal-plane frame: centre ``(y, z)`` and tilt ``phi`` (radians) of the cranial axis towards anterior."""

    y: float
    z: float
    phi: float

    @property
    def axis(self) -> tuple[float, float]:
        """Cranial unit vector (y, z)."""
        return math.sin(self.phi), math.cos(self.phi)

    @property
    def posterior(self) -> tuple[float, float]:
        """Posterior unit vector (y, z), perpendicular to the axis."""
        return -math.cos(self.phi), math.sin(self.phi)

    def to_local(self) -> np.ndarray:
        """4x4 affine from anatomy (x, y, z) to local (u, v, w)."""
        py, pz = self.posterior
        ay, az = self.axis
        return np.array(
            [
                [0.0, py, pz, -(py * self.y + pz * self.z)],
                [0.0, ay, az, -(ay * self.y + az * self.z)],
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )

    def point(self, u: float, v: float, w: float = 0.0) -> np.ndarray:
        """Anatomy-frame (x, y, z) of a local point."""
        py, pz = self.posterior
        ay, az = self.axis
        return np.array([w, self.y + u * py + v * ay, self.z + u * pz + v * az])


@dataclass(frozen=True)
class Posterior:
    """Posterior elements of one vertebra, in its local frame (mm)."""

    pedicle_offset: float
    pedicle_radius_lateral: float
    pedicle_radius_vertical: float
    pedicle_level: float
    pedicle_length: float
    canal_depth: float
    canal_half_width: float
    lamina_thickness: float
    lamina_top: float
    lamina_bottom: float
    spinous_length: float
    spinous_height: float
    spinous_thickness: float
    spinous_angle: float
    spinous_level: float
    facet_radius: float
    superior_facet_top: float | None
    inferior_facet_bottom: float | None
    transverse_length: float
    transverse_radius: float


@dataclass(frozen=True)
class Vertebra:
    """One vertebra (or fused sacral / coccygeal segment)."""

    index: int
    label: int
    name: str
    kind: str
    frame: Frame
    half_ap: float
    half_width: float
    half_height: float
    wedge: float
    concavity: float
    waist: float
    corner: float
    cortex: float
    posterior_cortex: float
    fat_fraction: float
    posterior: Posterior | None
    ala_half_width: float
    basivertebral_vein: bool

    @property
    def labelled(self) -> bool:
        return self.label > 0

    @property
    def height(self) -> float:
        """The vertebral body height in mm, as modic measures it (:attr:`modic.levels.endplates.BodyFrame.height_mm`).

        The mid-vertebral height: superior minus inferior endplate surface at
        the body's centre (``u = w = 0``), where each endplate dips by
        ``concavity``. Planted Modic bands are fractions of it.
        """
        return float(self.top(np.float32(0.0), np.float32(0.0)) - self.bottom(np.float32(0.0), np.float32(0.0)))

    def top(self, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Local ``v`` of the superior endplate surface (wedge tilt and central concavity)."""
        return np.float32(self.half_height) - u * np.float32(math.tan(self.wedge / 2)) - self._dip(u, w)

    def bottom(self, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Local ``v`` of the inferior endplate surface."""
        return np.float32(-self.half_height) + u * np.float32(math.tan(self.wedge / 2)) + self._dip(u, w)

    def _dip(self, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        ua = u * np.float32(1.0 / self.half_ap)
        wb = w * np.float32(1.0 / self.half_width)
        return np.float32(self.concavity) * np.maximum(np.float32(1.0) - ua * ua - wb * wb, np.float32(0.0))


@dataclass(frozen=True)
class Disc:
    """An intervertebral disc (``kind`` ``disc``), a rudimentary S1-S2 disc or a fused sacral remnant."""

    label: int
    name: str
    kind: str
    lower: int
    upper: int
    frame: Frame
    height: float
    half_ap: float
    half_width: float
    bulge: float
    pfirrmann: int
    nucleus_depth: float
    nucleus_height: float
    nucleus_offset: float
    cleft: float


@dataclass(frozen=True)
class Lesion:
    """A planted Modic band at one endplate (geometry in the vertebra's local frame)."""

    spec: ModicSpec
    vertebra: int
    depth_fraction: float
    ap_fraction: float
    ap_centre: float
    lateral_fraction: float
    split: float
    irregularity: float
    phases: tuple[float, float, float]


@dataclass(frozen=True)
class SchmorlNode:
    """Disc material herniated through an endplate into the vertebral body."""

    vertebra: int
    side: str
    disc: int
    u: float
    w: float
    radius: float


@dataclass(frozen=True)
class Canal:
    """Spinal canal contents (shared across levels)."""

    sac_depth_fraction: float
    anterior_epidural: float
    anterior_epidural_l5s1: float
    cord_radius: float
    conus_below: float
    roots: int
    root_radius: float
    ligamentum_flavum: float


@dataclass(frozen=True)
class SoftTissue:
    """Body wall, muscles and abdomen parameters."""

    skin: float
    back_fat: float
    gluteal_fat_extra: float
    muscle_beyond_spinous: float
    muscle_half_width: float
    psoas_radius: float
    belly_fat: float
    abdominal_wall_muscle: float
    abdomen_depth: float
    belly_curvature: float
    body_half_width: float
    muscle_fat_streaks: float
    bowel_fill: float
    bladder_radius: float
    liver_above_top_lumbar: float


@dataclass(frozen=True)
class Marrow:
    texture_amplitude: float
    texture_scale: float
    posterior_element_offset: float
    """Fat fraction of posterior element marrow relative to the body's."""


@dataclass(frozen=True)
class Anatomy:
    """Everything about one synthetic patient's lumbar spine region."""

    variant: Variant
    vertebrae: tuple[Vertebra, ...]
    discs: tuple[Disc, ...]
    lesions: tuple[Lesion, ...]
    schmorl_nodes: tuple[SchmorlNode, ...]
    canal: Canal
    soft: SoftTissue
    marrow: Marrow
    sacral_slope: float

    def vertebra(self, name: str) -> Vertebra:
        for v in self.vertebrae:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def s1(self) -> Vertebra:
        return next(v for v in self.vertebrae if v.label == 1)

    @property
    def top_lumbar(self) -> Vertebra:
        return [v for v in self.vertebrae if v.kind == "lumbar"][-1]

    def labelled_discs(self) -> list[Disc]:
        return [d for d in self.discs if d.label > 0]



# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def sample_anatomy(
    rng: np.random.Generator,
    config: SynthSettings,
    *,
    variant: Variant,
    modic: list[ModicSpec] | None,
) -> Anatomy:
    """Draw one patient's anatomy; ``modic`` None means random Modic placement from the config."""
    anat = config.anatomy
    scale = anat.size_scale.draw(rng)
    slope = math.radians(anat.sacral_slope_deg.draw(rng))
    lordosis = anat.lordosis_scale.draw(rng)
    kyphosis = anat.kyphosis_scale.draw(rng)
    sacral_curve = anat.sacral_curve_scale.draw(rng)
    n_above = anat.levels_above_s1
    body_cfg = anat.body
    marrow_cfg = anat.marrow
    marrow_ff = marrow_cfg.fat_fraction.draw(rng)
    ff_spread = marrow_cfg.vertebra_variation
    vein_chance = marrow_cfg.basivertebral_vein

    def jitter() -> float:
        return scale * float(rng.uniform(0.97, 1.03))

    # Vertebra dimensions from S1 upwards, then the lower sacral segments downwards.
    lumbar = anat.lumbar
    thoracic = anat.thoracic
    sacral = anat.sacral
    if n_above < variant.lumbar_count + 2:
        raise UsageError(f"anatomy.levels_above_s1 is {n_above}; {variant.lumbar_count + 2} or more are needed")
    if len(lumbar) < variant.lumbar_count:
        raise UsageError(f"the config lists {len(lumbar)} lumbar sizes; {variant.lumbar_count} are needed")
    if len(thoracic) < n_above - variant.lumbar_count:
        raise UsageError(f"the config lists {len(thoracic)} thoracic sizes; {n_above - variant.lumbar_count} needed")
    if len(sacral) != 1 + len(LOWER_SACRAL_NAMES):
        raise UsageError(f"the config must list {1 + len(LOWER_SACRAL_NAMES)} sacral segments (S1..S5, Co1..Co3)")
    names_up = level_names(1 + n_above)
    specs_up: list[tuple[str, VertebraSize, float]] = []
    s1_kind = "transitional" if variant.transitional_s1 else "sacral"
    specs_up.append((s1_kind, sacral[0], sacral_curve))
    specs_up += [("lumbar", lumbar[i], lordosis) for i in range(variant.lumbar_count)]
    specs_up += [("thoracic", thoracic[i], kyphosis) for i in range(n_above - variant.lumbar_count)]

    disc_cfg = anat.disc
    lumbar_discs = anat.lumbar_discs
    pfirrmann_rows = disc_cfg.pfirrmann
    height_factor = {int(k): v for k, v in disc_cfg.height_factor.weight().items()}

    # Labelled discs from the bottom: (height, wedge, pfirrmann).
    disc_params: list[tuple[float, float, int]] = []
    for i in range(n_above):
        if i < variant.lumbar_count:
            d = lumbar_discs[min(i, len(lumbar_discs) - 1)]
            wedge_scale = lordosis
        elif i == variant.lumbar_count:
            d = anat.thoracolumbar_disc
            wedge_scale = kyphosis
        else:
            d = anat.thoracic_discs
            wedge_scale = kyphosis
        grade = int(pfirrmann_rows[min(i, len(pfirrmann_rows) - 1)].pick(rng))
        wedge = math.radians(d.wedge_deg) * wedge_scale
        disc_params.append((d.height * jitter(), wedge, grade))

    specs = modic if modic is not None else _random_modic(rng, config.modic, names_up)
    modic_cfg = config.modic
    affected_discs = {_disc_index_of(spec, names_up) for spec in specs}
    disc_heights: list[float] = []
    grades: list[int] = []
    for i, (height, _wedge, grade) in enumerate(disc_params):
        if i in affected_discs:
            grade = max(grade, modic_cfg.disc_pfirrmann.draw(rng))
        grades.append(grade)
        disc_heights.append(height * height_factor.get(grade, 1.0))

    # Stack upwards from the S1 superior endplate (origin, tilted anteriorly by the sacral slope).
    dims_up = []
    for kind, size, wedge_scale in specs_up:
        height = size.height * jitter()
        depth = size.depth * jitter()
        width = size.width * jitter()
        wedge = math.radians(size.wedge_deg) * wedge_scale
        if kind == "transitional":
            t = anat.transitional_s1_scale
            height *= t.height
            depth *= t.depth
            wedge = math.radians(t.wedge_deg)
        dims_up.append((kind, height, depth, width, wedge, size))

    frames_up: list[Frame] = []
    disc_frames: list[Frame] = []
    s1_height, s1_wedge = dims_up[0][1], dims_up[0][4]
    # S1 itself: its superior endplate is the origin.
    phi_top = slope
    phi_mid = phi_top + s1_wedge / 2
    ay, az = math.sin(phi_mid), math.cos(phi_mid)
    frames_up.append(Frame(y=-ay * s1_height / 2, z=-az * s1_height / 2, phi=phi_mid))
    ey, ez, ephi = 0.0, 0.0, slope
    for i in range(n_above):
        height, wedge = disc_heights[i], disc_params[i][1]
        mid = ephi - wedge / 2
        ay, az = math.sin(mid), math.cos(mid)
        disc_frames.append(Frame(y=ey + ay * height / 2, z=ez + az * height / 2, phi=mid))
        ey, ez, ephi = ey + ay * height, ez + az * height, ephi - wedge
        _, vh, _, _, vw, _ = dims_up[i + 1]
        mid = ephi - vw / 2
        ay, az = math.sin(mid), math.cos(mid)
        frames_up.append(Frame(y=ey + ay * vh / 2, z=ez + az * vh / 2, phi=mid))
        ey, ez, ephi = ey + ay * vh, ez + az * vh, ephi - vw

    # Stack downwards from the S1 inferior endplate through S2..Co3.
    remnant_low, remnant_high = anat.sacral_remnant_height.low, anat.sacral_remnant_height.high
    rudimentary = anat.rudimentary_disc_height.draw(rng)
    s1_frame = frames_up[0]
    phi_bottom = slope + s1_wedge
    by = s1_frame.y - math.sin(s1_frame.phi) * s1_height / 2
    bz = s1_frame.z - math.cos(s1_frame.phi) * s1_height / 2
    lower_frames: list[Frame] = []
    lower_disc_frames: list[Frame] = []
    lower_dims = []
    lower_disc_heights: list[float] = []
    for j, size in enumerate(sacral[1:]):
        gap = rudimentary if (j == 0 and variant.transitional_s1) else float(rng.uniform(remnant_low, remnant_high))
        gap *= max(0.3, 1.0 - 0.12 * j)
        ay, az = math.sin(phi_bottom), math.cos(phi_bottom)
        lower_disc_frames.append(Frame(y=by - ay * gap / 2, z=bz - az * gap / 2, phi=phi_bottom))
        lower_disc_heights.append(gap)
        by, bz = by - ay * gap, bz - az * gap
        height = size.height * jitter()
        wedge = math.radians(size.wedge_deg) * sacral_curve
        mid = phi_bottom + wedge / 2
        ay, az = math.sin(mid), math.cos(mid)
        lower_frames.append(Frame(y=by - ay * height / 2, z=bz - az * height / 2, phi=mid))
        lower_dims.append(("sacral" if j < 4 else "coccygeal", height, size.depth * jitter(),
                           size.width * jitter(), wedge, size))
        by, bz = by - ay * height, bz - az * height
        phi_bottom += wedge

    # Assemble vertebrae bottom-to-top: Co3 .. S2, S1, L5, ...
    pe = anat.posterior_elements
    canal_cfg = anat.canal
    canal_depth = canal_cfg.depth.draw(rng)
    canal_half = canal_cfg.half_width.draw(rng)
    ordered: list[tuple[str, str, int, Frame, tuple]] = []
    for j in range(len(lower_frames) - 1, -1, -1):
        ordered.append((LOWER_SACRAL_NAMES[j], lower_dims[j][0], 0, lower_frames[j], lower_dims[j]))
    for i, frame in enumerate(frames_up):
        ordered.append((names_up[i], dims_up[i][0], i + 1, frame, dims_up[i]))
    n_lower = len(lower_frames)

    # Disc heights indexed by the vertebra below / above for posterior element extents.
    gap_above: dict[int, float] = {}
    gap_below: dict[int, float] = {}
    for j, h in enumerate(lower_disc_heights):
        upper_idx = n_lower - j  # S1 is index n_lower; S2 is n_lower - 1
        gap_below[upper_idx] = h
        gap_above[upper_idx - 1] = h
    for i, h in enumerate(disc_heights):
        lower_idx = n_lower + i
        gap_above[lower_idx] = h
        gap_below[lower_idx + 1] = h

    n_lumbar_seen = 0
    vertebrae: list[Vertebra] = []
    for index, (name, kind, label, frame, dims) in enumerate(ordered):
        _, height, depth, width, wedge, size = dims
        ala = size.ala_width * scale / 2
        if kind == "lumbar":
            n_lumbar_seen += 1
        posterior = _posterior(
            rng,
            pe,
            kind=kind,
            name=name,
            half_height=height / 2,
            lumbar_position=n_lumbar_seen,
            lumbar_count=variant.lumbar_count,
            canal_depth=canal_depth,
            canal_half=canal_half,
            gap_above=gap_above.get(index, 0.0),
            gap_below=gap_below.get(index, 0.0),
            has_vertebra_above=index + 1 < len(ordered),
        )
        vertebrae.append(
            Vertebra(
                index=index,
                label=label,
                name=name,
                kind=kind,
                frame=frame,
                half_ap=depth / 2,
                half_width=width / 2,
                half_height=height / 2,
                wedge=wedge,
                concavity=body_cfg.endplate_concavity.draw(rng) * min(1.0, height / 20.0),
                waist=body_cfg.waist.draw(rng),
                corner=min(body_cfg.corner_radius.draw(rng), 0.3 * height),
                cortex=body_cfg.cortex.draw(rng),
                posterior_cortex=body_cfg.posterior_element_cortex.draw(rng),
                fat_fraction=float(np.clip(marrow_ff + rng.normal(0.0, ff_spread), 0.1, 0.9)),
                posterior=posterior,
                ala_half_width=ala,
                basivertebral_vein=kind in ("lumbar", "thoracic", "transitional") and bool(rng.random() < vein_chance),
            )
        )

    # Discs: lower sacral remnants and labelled discs.
    discs: list[Disc] = []
    for j in range(len(lower_disc_frames) - 1, -1, -1):
        upper_idx = n_lower - j
        kind = "rudimentary" if (j == 0 and variant.transitional_s1) else "remnant"
        discs.append(
            _disc(rng, disc_cfg, vertebrae, kind=kind, label=0, lower=upper_idx - 1, upper=upper_idx,
                  frame=lower_disc_frames[j], height=lower_disc_heights[j], pfirrmann=3 if kind == "rudimentary" else 5)
        )
    for i in range(n_above):
        lower_idx = n_lower + i
        discs.append(
            _disc(rng, disc_cfg, vertebrae, kind="disc", label=i + 1, lower=lower_idx, upper=lower_idx + 1,
                  frame=disc_frames[i], height=disc_heights[i], pfirrmann=grades[i])
        )

    lesions, nodes = _place_lesions(rng, modic_cfg, specs, vertebrae, discs)
    soft_cfg = anat.soft_tissue
    soft = SoftTissue(**{f: getattr(soft_cfg, f).draw(rng) if f != "skin" else soft_cfg.skin
                         for f in SoftTissue.__dataclass_fields__})
    canal = Canal(
        sac_depth_fraction=canal_cfg.sac_depth_fraction.draw(rng),
        anterior_epidural=canal_cfg.anterior_epidural.draw(rng),
        anterior_epidural_l5s1=canal_cfg.anterior_epidural_l5s1.draw(rng),
        cord_radius=canal_cfg.cord_radius.draw(rng),
        conus_below=canal_cfg.conus_below_top_lumbar.draw(rng),
        roots=canal_cfg.cauda_equina_roots.draw(rng),
        root_radius=canal_cfg.root_radius.draw(rng),
        ligamentum_flavum=canal_cfg.ligamentum_flavum.draw(rng),
    )
    return Anatomy(
        variant=variant,
        vertebrae=tuple(vertebrae),
        discs=tuple(discs),
        lesions=tuple(lesions),
        schmorl_nodes=tuple(nodes),
        canal=canal,
        soft=soft,
        marrow=Marrow(
            texture_amplitude=marrow_cfg.texture_amplitude.draw(rng),
            texture_scale=marrow_cfg.texture_scale.draw(rng),
            posterior_element_offset=marrow_cfg.posterior_element_fat_offset,
        ),
        sacral_slope=slope,
    )


def _posterior(
    rng: np.random.Generator,
    pe: PosteriorElementSettings,
    *,
    kind: str,
    name: str,
    half_height: float,
    lumbar_position: int,
    lumbar_count: int,
    canal_depth: float,
    canal_half: float,
    gap_above: float,
    gap_below: float,
    has_vertebra_above: bool,
) -> Posterior | None:
    """Pedicles, laminae, spinous and articular processes sized for the vertebra's kind."""
    if kind == "coccygeal" or name == "S5":
        return None
    rw_low, rw_high = pe.pedicle_radius_lateral.low, pe.pedicle_radius_lateral.high
    if kind == "lumbar":
        # L1-like pedicles are slender, L5-like ones broad.
        t = 1.0 - (lumbar_position - 1) / max(lumbar_count - 1, 1)
        radius_lateral = rw_low + t * (rw_high - rw_low)
    else:
        radius_lateral = rw_low * (0.85 if kind == "thoracic" else 1.2)
    sacral = kind in ("sacral",)
    depth_factor = {"thoracic": 0.9, "sacral": 0.55}.get(kind, 1.0)
    canal = canal_depth * depth_factor * float(rng.uniform(0.95, 1.05))
    half = canal_half * (0.85 if kind == "thoracic" else 1.0)
    pedicle_length = pe.pedicle_length.draw(rng) * (0.6 if sacral else 1.0)
    lamina = pe.lamina_thickness.draw(rng)
    if kind == "thoracic":
        angle = math.radians(pe.thoracic_spinous_angle_deg.draw(rng))
        spinous_length = pe.spinous_length.draw(rng) * 1.1
        spinous_height = pe.spinous_height.draw(rng) * 0.55
    elif sacral:
        angle = math.radians(pe.spinous_angle_deg.draw(rng))
        spinous_length = pe.spinous_length.draw(rng) * 0.3
        spinous_height = pe.spinous_height.draw(rng) * 0.6
    else:
        angle = math.radians(pe.spinous_angle_deg.draw(rng))
        spinous_length = pe.spinous_length.draw(rng)
        spinous_height = pe.spinous_height.draw(rng)
    articulating = kind in ("lumbar", "thoracic", "transitional")
    superior_facet = (
        half_height + 0.8 * gap_above if (articulating or name == "S1") and has_vertebra_above else None
    )
    inferior_facet = -half_height - 0.9 * gap_below if articulating else None
    # Sacral segments are fused to the one below (S1 too) and, below S1, to the one above.
    fused_below = sacral
    fused_above = sacral and name != "S1"
    return Posterior(
        pedicle_offset=half + radius_lateral,
        pedicle_radius_lateral=radius_lateral,
        pedicle_radius_vertical=pe.pedicle_radius_vertical.draw(rng) * min(1.0, half_height / 12.0),
        pedicle_level=0.25 * half_height,
        pedicle_length=pedicle_length,
        canal_depth=canal,
        canal_half_width=half,
        lamina_thickness=lamina,
        lamina_top=half_height + gap_above / 2 if fused_above else 0.55 * half_height,
        lamina_bottom=-half_height - (gap_below / 2 if fused_below else 0.3 * gap_below),
        spinous_length=spinous_length,
        spinous_height=spinous_height,
        spinous_thickness=pe.spinous_thickness.draw(rng) * (0.8 if kind == "thoracic" else 1.0),
        spinous_angle=angle,
        spinous_level=-0.2 * half_height,
        facet_radius=pe.facet_radius.draw(rng) * (0.8 if kind == "thoracic" else 1.0),
        superior_facet_top=superior_facet,
        inferior_facet_bottom=inferior_facet,
        transverse_length=pe.transverse_length.draw(rng) * (0.0 if sacral else 1.0),
        transverse_radius=pe.transverse_radius.draw(rng),
    )


def _disc(
    rng: np.random.Generator,
    cfg: DiscSettings,
    vertebrae: list[Vertebra],
    *,
    kind: str,
    label: int,
    lower: int,
    upper: int,
    frame: Frame,
    height: float,
    pfirrmann: int,
) -> Disc:
    below, above = vertebrae[lower], vertebrae[upper]
    degenerated = pfirrmann >= 4
    bulge = (cfg.degenerated_bulge if degenerated else cfg.bulge).draw(rng)
    if kind != "disc":
        bulge = 0.0
    return Disc(
        label=label,
        name=f"{above.name}-{below.name}",
        kind=kind,
        lower=lower,
        upper=upper,
        frame=frame,
        height=height,
        half_ap=(below.half_ap + above.half_ap) / 2,
        half_width=(below.half_width + above.half_width) / 2,
        bulge=bulge,
        pfirrmann=pfirrmann,
        nucleus_depth=cfg.nucleus_depth.draw(rng) * (1.0 - 0.08 * (pfirrmann - 1)),
        nucleus_height=cfg.nucleus_height.draw(rng),
        nucleus_offset=cfg.nucleus_offset.draw(rng),
        cleft=cfg.intranuclear_cleft.draw(rng),
    )


def _disc_index_of(spec: ModicSpec, names_up: list[str]) -> int:
    """Index (from the bottom, L5-S1 = 0) of the disc next to an endplate; raises UsageError if none."""
    if spec.vertebra not in names_up:
        raise UsageError(
            f"endplate {spec.endplate!r}: no vertebra {spec.vertebra!r} in this model "
            f"(vertebrae counted from S1 upwards: {', '.join(names_up)})"
        )
    position = names_up.index(spec.vertebra)
    if spec.side == "superior":
        if position == len(names_up) - 1:
            raise UsageError(f"endplate {spec.endplate!r} has no disc above it in this model")
        return position
    if position == 0:
        raise UsageError(f"endplate {spec.endplate!r} is not next to an intervertebral disc; S1 has no inferior disc")
    return position - 1


def _random_modic(rng: np.random.Generator, cfg: ModicSettings, names_up: list[str]) -> list[ModicSpec]:
    """Random Modic changes following the config's probabilities."""
    if not chance(rng, cfg.probability):
        return []
    n_levels = int(cfg.levels.pick(rng))
    weights = cfg.level_weights.weight()
    levels = [lvl for lvl in weights if _level_exists(lvl, names_up) and weights[lvl] > 0]
    p = np.array([weights[lvl] for lvl in levels])
    chosen = rng.choice(len(levels), size=min(n_levels, len(levels)), replace=False, p=p / p.sum())
    specs: list[ModicSpec] = []
    for idx in sorted(int(i) for i in chosen):
        upper, lower = levels[idx].split("-")
        kissing = chance(rng, cfg.kissing)
        sides = [f"{upper} inferior", f"{lower} superior"]
        if not kissing:
            sides = [sides[int(rng.integers(2))]]
        first = str(cfg.types.pick(rng))
        for k, endplate in enumerate(sides):
            kind = first if (k == 0 or rng.random() < 0.7) else str(cfg.types.pick(rng))
            mixed = kind if "/" in kind else None
            modic_type = max(int(t) for t in kind.split("/"))
            specs.append(ModicSpec(endplate=endplate, modic_type=modic_type, mixed=mixed))
    return specs


def _level_exists(level: str, names_up: list[str]) -> bool:
    parts = level.split("-")
    return len(parts) == 2 and parts[0] in names_up and parts[1] in names_up


def _place_lesions(
    rng: np.random.Generator,
    cfg: ModicSettings,
    specs: list[ModicSpec],
    vertebrae: list[Vertebra],
    discs: list[Disc],
) -> tuple[list[Lesion], list[SchmorlNode]]:
    by_name = {v.name: v for v in vertebrae if v.labelled}
    lesions: list[Lesion] = []
    nodes: list[SchmorlNode] = []
    for spec in specs:
        vertebra = by_name[spec.vertebra]
        depth = spec.depth_fraction if spec.depth_fraction is not None else cfg.depth_fraction.draw(rng)
        ap = spec.ap_fraction if spec.ap_fraction is not None else cfg.ap_fraction.draw(rng)
        half_window = ap * vertebra.half_ap
        room = max(vertebra.half_ap - half_window, 0.0)
        resolved = replace(spec, depth_fraction=round(depth, 4), ap_fraction=round(ap, 4))
        lesions.append(
            Lesion(
                spec=resolved,
                vertebra=vertebra.index,
                depth_fraction=depth,
                ap_fraction=ap,
                ap_centre=float(rng.uniform(-room, room)) if room > 0 else 0.0,
                lateral_fraction=cfg.lateral_fraction.draw(rng),
                split=cfg.mixed_split.draw(rng),
                irregularity=cfg.irregularity.draw(rng),
                phases=tuple(float(p) for p in rng.uniform(0, 2 * math.pi, size=3)),  # type: ignore[arg-type]
            )
        )
        schmorl = spec.schmorl_node or chance(rng, cfg.schmorl_node)
        if schmorl:
            disc = next(
                d for d in discs
                if d.label > 0 and (d.upper if spec.side == "inferior" else d.lower) == vertebra.index
            )
            if not spec.schmorl_node:
                lesions[-1] = replace(lesions[-1], spec=replace(resolved, schmorl_node=True))
            nodes.append(
                SchmorlNode(
                    vertebra=vertebra.index,
                    side=spec.side,
                    disc=disc.label,
                    u=float(rng.uniform(-0.4, 0.3)) * vertebra.half_ap,
                    w=float(rng.uniform(-0.3, 0.3)) * vertebra.half_width,
                    radius=cfg.schmorl_radius.draw(rng),
                )
            )
    return lesions, nodes
