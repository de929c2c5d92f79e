"""Generate one synthetic lumbar spine MRI study: images, label maps and the ground truth.

Everything is drawn from random streams derived from the seed (one per
purpose and series), so the same seed and config give byte-identical output
and rendering an extra series later never changes the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from modic import __version__
from modic.errors import UsageError
from modic.io.volume import Volume
from modic.synth.acquisition import EXTRA_SERIES, SERIES_NAMES, Planner, SeriesPlan
from modic.synth.anatomy import Anatomy, Variant, sample_anatomy
from modic.synth.config import (
    PatientSettings,
    SynthSettings,
    SynthSource,
    VariantSettings,
    chance,
    load_synth_settings,
)
from modic.synth.dicom_writer import PatientStudy, deterministic_uid
from modic.synth.lesions import ModicSpec, parse_modic
from modic.synth.render import Renderer, derive
from modic.synth.scene import Scene
from modic.synth.spine import build_spine_frame
from modic.synth.tissues import TissueModel

GENERATOR_VERSION = "1.1"
TRUTH_SCHEMA = "modic.synth.truth/1"
SEMANTIC_CLASSES = {0: "background", 1: "vertebral body", 2: "intervertebral disc", 3: "S1 vertebral body"}
LABEL_MAPS = ("semantic", "vertebra_instances", "disc_instances", "endplate_modic")

if TYPE_CHECKING:
    from modic.io.study import StudyImages

_STREAM_VARIANT, _STREAM_ANATOMY, _STREAM_PATIENT, _STREAM_SCENE = 0, 1, 2, 4


class SyntheticStudy:
    """A generated study: T1 and T2 volumes, label maps on the T1 grid and the ground truth.

    Attributes:
        t1, t2: sagittal series (:class:`~modic.io.volume.Volume`, world RAS affines; T2 may have its own grid).
        semantic: 0 background, 1 vertebral body (every vertebra but S1), 2 disc, 3 S1 body.
        vertebra_instances: 1 = S1, 2 = the vertebra above (L5), ... counted from the bottom.
        disc_instances: 1 = L5-S1, 2 = L4-L5, ...
        endplate_modic: Modic type (1, 2, 3) of the marrow inside each planted band, else 0.
        truth: the ground truth as written to ``truth.json``.
    """

    def __init__(
        self,
        *,
        seed: int,
        key: str,
        config_name: str,
        anatomy: Anatomy,
        patient: PatientStudy,
        planner: Planner,
        renderer: Renderer,
        t1: Volume,
        t2: Volume,
        labels: Mapping[str, Volume],
        truth: dict[str, Any],
    ) -> None:
        self.seed = seed
        self.key = key
        self.config_name = config_name
        self.anatomy = anatomy
        self.variant = anatomy.variant
        self.patient = patient
        self.t1 = t1
        self.t2 = t2
        self.semantic = labels["semantic"]
        self.vertebra_instances = labels["vertebra_instances"]
        self.disc_instances = labels["disc_instances"]
        self.endplate_modic = labels["endplate_modic"]
        self.truth = truth
        self._planner = planner
        self._renderer = renderer
        self._series: dict[str, list[Volume]] = {"t1": [t1], "t2": [t2]}

    @property
    def labels(self) -> dict[str, Volume]:
        """The label maps by name (:data:`LABEL_MAPS`)."""
        return {name: getattr(self, name) for name in LABEL_MAPS}

    def plan(self, name: str) -> SeriesPlan:
        """Protocol and geometry of series ``name``."""
        return self._planner.plan(name)

    def series(self, name: str) -> list[Volume]:
        """Volumes of series ``name`` (rendered on first use): one, or one per slice block (axial, localizer)."""
        if name not in SERIES_NAMES:
            raise UsageError(f"unknown series {name!r}; choose from {', '.join(SERIES_NAMES)}")
        if name not in self._series:
            plan = self._planner.plan(name)
            if name == "derived":
                self._series[name] = [derive(self.t1, plan)]
            else:
                self._series[name] = self._renderer.series(plan)
            self.truth["series"][name] = plan.acquisition()
        return self._series[name]

    @property
    def stir(self) -> Volume:
        """The sagittal STIR series (rendered on first use)."""
        return self.series("stir")[0]


LEVEL_SIGNIFICANCE = (1, 2, 3, 0)
"""Most significant first: a level's true type is its endplates' most significant type,
the convention of ``classification.level_significance`` and of radiologists' level grades."""

def generate_study(
    *,
    seed: int,
    config: SynthSource = None,
    modic: str | Mapping[str, object] | Sequence[ModicSpec | Mapping[str, object]] | None = None,
    variant: Variant | Mapping[str, Any] | None = None,
) -> SyntheticStudy:
    """Generate the study for ``seed``.

    Args:
        seed: non-negative integer; the same seed and config give identical output.
        config: settings, a shipped config name (``"default"``, ``"tiny"``), a YAML file or a mapping
            holding the keys to change (see :func:`~modic.synth.config.load_synth_settings`).
        modic: changes to plant (see :func:`modic.synth.lesions.parse_modic`); None draws them from the
            config, an empty list plants none.
        variant: a :class:`Variant` or a mapping with some of its fields; missing ones are drawn.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"seed {seed!r} must be a non-negative integer")
    seed = int(seed)
    root = load_synth_settings(config)
    chosen = _variant(np.random.default_rng([seed, _STREAM_VARIANT]), root.variants, variant)
    specs = None if modic is None else parse_modic(modic)
    anatomy = sample_anatomy(np.random.default_rng([seed, _STREAM_ANATOMY]), root, variant=chosen, modic=specs)
    render_cfg = root.render
    spine = build_spine_frame(anatomy, step=render_cfg.spine_frame_step)
    tissues = TissueModel.from_settings(root.tissue_model)
    patient_rng = np.random.default_rng([seed, _STREAM_PATIENT])
    key = study_key(root, seed)
    patient = _patient(patient_rng, root.patient, seed=seed, key=key)
    field_strength = float(root.scanner.field_strength.pick(patient_rng))
    planner = Planner(root, anatomy, seed=seed, patient=patient, field_strength=field_strength)
    scene = Scene(anatomy, spine, render_cfg, np.random.default_rng([seed, _STREAM_SCENE]))
    renderer = Renderer(scene, tissues, render_cfg, pose_inverse=planner.pose_inverse, seed=seed)

    t1_plan = planner.plan("t1")
    t2_plan = planner.plan("t2")
    t1 = renderer.series(t1_plan)[0]
    t2 = renderer.series(t2_plan)[0]
    grid = t1_plan.grids[0]
    raw = renderer.labels(grid)
    labels = {
        "semantic": t1.with_array(raw["semantic"].astype(np.float32), series="labels", label_map="semantic"),
        "vertebra_instances": t1.with_array(raw["vertebrae"].astype(np.float32), series="labels",
                                            label_map="vertebra_instances"),
        "disc_instances": t1.with_array(raw["discs"].astype(np.float32), series="labels", label_map="disc_instances"),
        "endplate_modic": t1.with_array(raw["modic"].astype(np.float32), series="labels", label_map="endplate_modic"),
    }
    truth = _truth(
        seed=seed,
        key=key,
        config_name=root.name,
        anatomy=anatomy,
        patient=patient,
        pose=planner.pose,
        labels=raw,
        plans={"t1": t1_plan, "t2": t2_plan},
        conus_s=spine.s_conus,
        spine_point=spine.point,
    )
    return SyntheticStudy(
        seed=seed,
        key=key,
        config_name=root.name,
        anatomy=anatomy,
        patient=patient,
        planner=planner,
        renderer=renderer,
        t1=t1,
        t2=t2,
        labels=labels,
        truth=truth,
    )


def study_key(config: SynthSettings, seed: int) -> str:
    """The study's key (its folder name) from the config's ``study_key`` template."""
    return config.study_key.format(seed=seed)


def _variant(rng: np.random.Generator, section: VariantSettings, given: Variant | Mapping[str, Any] | None) -> Variant:
    """Draw every field (so the stream is the same whatever is given), then apply the given ones."""
    drawn = {
        "lumbar_count": int(section.lumbar_count.pick(rng)),
        "transitional_s1": chance(rng, section.transitional_s1),
        "sacrum_in_fov": chance(rng, section.sacrum_in_fov),
    }
    if given is None:
        return Variant(**drawn)
    values = asdict(given) if isinstance(given, Variant) else dict(given)
    unknown = set(values) - {f.name for f in fields(Variant)}
    if unknown:
        raise UsageError(
            f"unknown variant field(s) {sorted(unknown)}; use lumbar_count, transitional_s1, sacrum_in_fov"
        )
    return Variant(**{**drawn, **values})


def _date(rng: np.random.Generator, dates: tuple[str, str]) -> str:
    """A uniform draw from a range of YYYYMMDD dates (checked when the settings were loaded)."""
    a, b = (dt.datetime.strptime(date, "%Y%m%d").date().toordinal() for date in dates)
    return dt.date.fromordinal(int(rng.integers(a, b + 1))).strftime("%Y%m%d")


def _patient(rng: np.random.Generator, section: PatientSettings, *, seed: int, key: str) -> PatientStudy:
    hour = section.study_hour.draw(rng)
    minute = int(rng.integers(0, 60))
    return PatientStudy(
        patient_name=section.name.format(seed=seed),
        patient_id=section.id.format(seed=seed),
        birth_date=_date(rng, section.birth_date),
        sex=str(section.sex.pick(rng)),
        study_uid=section.study_uid or str(deterministic_uid("modic.synth", key, seed)),
        study_date=_date(rng, section.study_date),
        study_time=f"{hour:02d}{minute:02d}00",
        accession_number=section.accession_number.format(seed=seed),
        study_id=section.study_id.format(seed=seed),
        study_description=section.study_description,
        referring_physician=section.referring_physician,
        institution=section.institution,
        frame_of_reference_uid=str(deterministic_uid("modic.synth", key, seed, "frame")),
    )


def _world(pose: np.ndarray, point: np.ndarray) -> list[float]:
    return [round(float(c), 3) for c in (pose @ np.append(point, 1.0))[:3]]


def _truth(
    *,
    seed: int,
    key: str,
    config_name: str,
    anatomy: Anatomy,
    patient: PatientStudy,
    pose: np.ndarray,
    labels: Mapping[str, np.ndarray],
    plans: Mapping[str, SeriesPlan],
    conus_s: float,
    spine_point,  # type: ignore[no-untyped-def]
) -> dict[str, Any]:
    vertebra_counts = np.bincount(labels["vertebrae"].ravel(), minlength=256)
    disc_counts = np.bincount(labels["discs"].ravel(), minlength=256)
    vertebrae = [
        {
            "label": v.label,
            "name": v.name,
            "kind": v.kind,
            "centroid_ras": _world(pose, v.frame.point(0.0, 0.0)),
            "voxels": int(vertebra_counts[v.label]),
            "height_mm": round(v.height, 2),
            "ap_mm": round(2 * v.half_ap, 2),
            "width_mm": round(2 * v.half_width, 2),
        }
        for v in anatomy.vertebrae
        if v.labelled and vertebra_counts[v.label] > 0
    ]
    discs = [
        {
            "label": d.label,
            "name": d.name,
            "centroid_ras": _world(pose, d.frame.point(0.0, 0.0)),
            "voxels": int(disc_counts[d.label]),
            "height_mm": round(d.height, 2),
            "pfirrmann": d.pfirrmann,
        }
        for d in anatomy.discs
        if d.label > 0 and disc_counts[d.label] > 0
    ]
    lesions = {lesion.spec.endplate: lesion for lesion in anatomy.lesions}
    lesion_discs = {
        d.name
        for d in anatomy.labelled_discs()
        for lesion in anatomy.lesions
        if (d.upper if lesion.spec.side == "inferior" else d.lower) == lesion.vertebra
    }
    shown = {d["name"] for d in discs} | lesion_discs
    endplates = []
    levels = {}
    for disc in anatomy.labelled_discs():
        if disc.name not in shown:
            continue
        upper_name, lower_name = disc.name.split("-")
        pair = []
        for vertebra_name, side in ((upper_name, "inferior"), (lower_name, "superior")):
            endplate = f"{vertebra_name} {side}"
            vertebra = anatomy.vertebra(vertebra_name)
            lesion = lesions.get(endplate)
            entry = {
                "name": endplate,
                "vertebra": vertebra_name,
                "vertebra_label": vertebra.label,
                "side": side,
                "disc": disc.name,
                "modic_type": lesion.spec.modic_type if lesion else 0,
                "mixed": lesion.spec.mixed if lesion else None,
                "extent": None if lesion is None else {
                    "depth_fraction": round(lesion.depth_fraction, 4),
                    "ap_fraction": round(lesion.ap_fraction, 4),
                    "ap_centre_fraction": round(lesion.ap_centre / vertebra.half_ap, 4),
                    "lateral_fraction": round(lesion.lateral_fraction, 4),
                    "mixed_split": round(lesion.split, 4) if lesion.spec.mixed else None,
                },
                "schmorl_node": bool(lesion and lesion.spec.schmorl_node),
                "band_voxels": int(np.count_nonzero((labels["modic"] > 0) & (labels["vertebrae"] == vertebra.label)))
                if lesion else 0,
            }
            endplates.append(entry)
            pair.append(entry)
        levels[disc.name] = {
            "disc_label": disc.label,
            "modic_type": min((pair[0]["modic_type"], pair[1]["modic_type"]), key=LEVEL_SIGNIFICANCE.index),
            "upper_endplate": {"name": pair[0]["name"], "modic_type": pair[0]["modic_type"], "mixed": pair[0]["mixed"]},
            "lower_endplate": {"name": pair[1]["name"], "modic_type": pair[1]["modic_type"], "mixed": pair[1]["mixed"]},
            "pfirrmann": disc.pfirrmann,
        }
    rudimentary = next((d for d in anatomy.discs if d.kind == "rudimentary"), None)
    conus_y, conus_z = spine_point(conus_s)
    return {
        "schema": TRUTH_SCHEMA,
        "generator_version": GENERATOR_VERSION,
        "modic_version": __version__,
        "seed": seed,
        "study_key": key,
        "config": config_name,
        "variant": {
            "lumbar_count": anatomy.variant.lumbar_count,
            "transitional_s1": anatomy.variant.transitional_s1,
            "sacrum_in_fov": anatomy.variant.sacrum_in_fov,
            "rudimentary_disc": None if rudimentary is None else {
                "name": rudimentary.name,
                "centroid_ras": _world(pose, rudimentary.frame.point(0.0, 0.0)),
                "labelled": False,
            },
        },
        "patient": asdict(patient),
        "labels": {
            "grid": "t1",
            "semantic": {str(k): v for k, v in SEMANTIC_CLASSES.items()},
            "vertebra_instances": "counted from the bottom: 1 = S1, 2 = L5 (the vertebra above), 3 = L4, ...",
            "disc_instances": "counted from the bottom: 1 = L5-S1, 2 = L4-L5, ...",
            "endplate_modic": {"0": "none", "1": "Modic type 1", "2": "Modic type 2", "3": "Modic type 3"},
            "naming": "vertebrae are named counting from S1 upwards, whatever the number of lumbar-type vertebrae",
        },
        "vertebrae": vertebrae,
        "discs": discs,
        "endplates": endplates,
        "levels": levels,
        "anatomy": {
            "sacral_slope_deg": round(float(np.degrees(anatomy.sacral_slope)), 2),
            "conus_tip_ras": _world(pose, np.array([0.0, conus_y, conus_z])),
            "pose": np.round(pose, 6).tolist(),
        },
        "series": {name: plan.acquisition() for name, plan in plans.items()},
    }


__all__ = ["EXTRA_SERIES", "GENERATOR_VERSION", "LABEL_MAPS", "SyntheticStudy", "generate_study", "study_key"]


def to_study_images(study: SyntheticStudy) -> StudyImages:
    """The study's T1 and T2 as the pipeline receives them (T2 resampled onto the T1 grid), without DICOM I/O."""
    from modic.io.resample import resample_to
    from modic.io.study import StudyImages

    return StudyImages(
        t1=study.t1,
        t2=resample_to(study.t2, study.t1),
        t2_native=study.t2,
        decisions=[],
        study_uid=None,
        series={},
    )
