"""The generator's settings (``configs/synth/*.yaml``): typed, frozen and validated once, at load.

``default.yaml`` holds every setting. Any other config, shipped (``tiny``,
``demo``) or the user's, holds only what differs and is merged over the config
it names in ``extends`` (``default`` when it names none), key by key within
sections; lists and weight tables are replaced whole. The merge, the checks
and the one-line errors that name the file and the dotted key (with the
closest spelling for a misspelt key) are those of the analysis settings
(:mod:`modic.settings.build`).

Values the generator draws are :class:`Span` (a uniform range), :class:`Count`
(a uniform integer range) and :class:`Choice` (a weighted or uniform choice);
they draw from the random stream exactly as the generator always has, so the
same seed and config give the same bytes. They are named tuples, not
dataclasses, because the builder reads a dataclass-typed field as a section.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from modic.config import load_yaml, resolve_config
from modic.errors import ConfigError
from modic.settings.build import Layer, build
from modic.settings.fields import Rejected, levels, omissible, setting, text

CONFIG_FOLDER = "synth"
BASE = "default"
"""The shipped config that holds every setting; the others are merged over it."""
SEE = "configs/synth/default.yaml"


# Values drawn per study ------------------------------------------------------------------------


class Span(NamedTuple):
    """A uniform range ``[low, high]``; a single number in the YAML file is a fixed value."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        """A uniform draw (no draw at all for a fixed value, so the stream does not move)."""
        return float(rng.uniform(self.low, self.high)) if self.high > self.low else self.low


class Count(NamedTuple):
    """A uniform integer range ``[low, high]``, both included."""

    low: int
    high: int

    def draw(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))


class Choice(NamedTuple):
    """A choice among ``options``: weighted (``{option: weight}`` in YAML) or, for a list, uniform."""

    options: tuple[Any, ...]
    weights: tuple[float, ...] | None

    def pick(self, rng: np.random.Generator) -> Any:
        if self.weights is None:
            return self.options[int(rng.integers(len(self.options)))]
        p = np.array(self.weights, dtype=float)
        return self.options[int(rng.choice(len(self.options), p=p / p.sum()))]

    def weight(self) -> dict[Any, float]:
        """``{option: weight}`` (a uniform choice weighs each option 1)."""
        return dict(zip(self.options, self.weights or (1.0,) * len(self.options), strict=True))


# Field checks of the generator's settings ------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def real(low: float | None = None, high: float | None = None) -> Any:
    """A number within ``[low, high]``, held as a float."""
    wanted = "a number" + (f" from {low}" if low is not None else "") + (f" to {high}" if high is not None else "")

    def check(value: Any) -> float:
        if not _is_number(value) or (low is not None and value < low) or (high is not None and value > high):
            raise Rejected(wanted)
        return float(value)

    return setting(check)


def whole(low: int) -> Any:
    """An integer of at least ``low``."""

    def check(value: Any) -> int:
        if not _is_number(value) or not isinstance(value, int) or value < low:
            raise Rejected(f"an integer of at least {low}")
        return value

    return setting(check)


def unit_interval() -> Any:
    """A number from 0 to 1 (a probability or a fraction)."""
    return real(0.0, 1.0)


def reals(length: int) -> Any:
    """A list of ``length`` numbers, as a tuple of floats."""

    def check(value: Any) -> tuple[float, ...]:
        if not isinstance(value, list) or len(value) != length or not all(_is_number(v) for v in value):
            raise Rejected(f"a list of {length} numbers")
        return tuple(float(v) for v in value)

    return setting(check)


def _span(value: Any) -> Span:
    if _is_number(value):
        return Span(float(value), float(value))
    if not isinstance(value, list) or len(value) != 2 or not all(_is_number(v) for v in value) or value[0] > value[1]:
        raise Rejected("a number or a [low, high] pair with low <= high")
    return Span(float(value[0]), float(value[1]))


def span() -> Any:
    """A :class:`Span`: a number or a ``[low, high]`` pair."""
    return setting(_span)


def count() -> Any:
    """A :class:`Count`: an integer or a ``[low, high]`` pair of integers."""

    def check(value: Any) -> Count:
        try:
            drawn = _span(value)
        except Rejected:
            drawn = None
        if drawn is None or drawn.low != int(drawn.low) or drawn.high != int(drawn.high):
            raise Rejected("an integer or a [low, high] pair of integers with low <= high")
        return Count(int(drawn.low), int(drawn.high))

    return setting(check)


def _weights(value: Any) -> Choice:
    if (
        not isinstance(value, Mapping)
        or not value
        or not all(_is_number(w) and w >= 0 for w in value.values())
        or sum(value.values()) <= 0
    ):
        raise Rejected("a mapping of choices to non-negative weights, not all 0")
    return Choice(tuple(value), tuple(float(w) for w in value.values()))


def weights() -> Any:
    """A weighted :class:`Choice`: ``{option: weight}``."""
    return setting(_weights)


def weight_rows() -> Any:
    """A non-empty list of weighted choices, as a tuple of :class:`Choice`."""

    def check(value: Any) -> tuple[Choice, ...]:
        if not isinstance(value, list) or not value:
            raise Rejected("a non-empty list of mappings of choices to weights")
        try:
            return tuple(_weights(row) for row in value)
        except Rejected as exc:
            raise Rejected(f"a non-empty list, each {exc}") from None

    return setting(check)


def matrix() -> Any:
    """Image matrix sizes: a list (uniform choice) or ``{size: weight}``."""

    def check(value: Any) -> Choice:
        if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                     for v in value):
            return Choice(tuple(value), None)
        try:
            choice = _weights(value)
        except Rejected:
            choice = None
        if choice is None or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in choice.options):
            raise Rejected("a list of matrix sizes or a mapping of matrix sizes to weights")
        return choice

    return setting(check)


def spans_by_field() -> Any:
    """``{field strength in T: span}``, as a tuple of pairs."""

    def check(value: Any) -> tuple[tuple[float, Span], ...]:
        if not isinstance(value, Mapping) or not value or not all(_is_number(k) for k in value):
            raise Rejected("a mapping of field strengths to a number or [low, high] pair")
        try:
            return tuple((float(k), _span(v)) for k, v in value.items())
        except Rejected as exc:
            raise Rejected(f"a mapping of field strengths, each to {exc}") from None

    return setting(check)


def dates() -> Any:
    """Two dates ``[YYYYMMDD, YYYYMMDD]`` in order, as texts."""

    def check(value: Any) -> tuple[str, str]:
        wanted = "two dates [YYYYMMDD, YYYYMMDD], the first not after the second"
        if not isinstance(value, list) or len(value) != 2:
            raise Rejected(wanted)
        try:
            first, second = (dt.datetime.strptime(str(v), "%Y%m%d").date() for v in value)
        except ValueError:
            raise Rejected(wanted) from None
        if first > second:
            raise Rejected(wanted)
        return str(value[0]), str(value[1])

    return setting(check)


def template() -> Any:
    """A text that may hold ``{seed}`` (e.g. ``SYN{seed:06d}``)."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise Rejected("a non-empty text that may hold {seed}, e.g. SYN{seed:06d}")
        try:
            value.format(seed=0)
        except (KeyError, IndexError, ValueError):
            raise Rejected("a text whose only placeholder is {seed}, e.g. SYN{seed:06d}") from None
        return value

    return setting(check)


def word(*accepted: str) -> Any:
    """One of the texts ``accepted``."""

    def check(value: Any) -> str:
        if value not in accepted:
            raise Rejected(f"one of {', '.join(accepted)}")
        return str(value)

    return setting(check)


# Sections ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PatientSettings:
    """Identifiers written to DICOM and truth.json; texts may hold ``{seed}``."""

    name: str = template()
    id: str = template()
    birth_date: tuple[str, str] = dates()
    sex: Choice = weights()
    study_date: tuple[str, str] = dates()
    study_hour: Count = count()
    accession_number: str = template()
    study_id: str = template()
    referring_physician: str = text()
    institution: str = text()
    study_description: str = text()
    study_uid: str | None = omissible(text())
    """A fixed Study Instance UID; left out, one is derived from the study key and seed."""


@dataclass(frozen=True, kw_only=True)
class ScannerSettings:
    field_strength: Choice = weights()
    manufacturer: str = text()
    model_name: str = text()


@dataclass(frozen=True, kw_only=True)
class VariantSettings:
    """Chances of the anatomical variants (see :class:`modic.synth.anatomy.Variant`)."""

    lumbar_count: Choice = weights()
    transitional_s1: float = unit_interval()
    sacrum_in_fov: float = unit_interval()


@dataclass(frozen=True, kw_only=True)
class BodySettings:
    corner_radius: Span = span()
    endplate_concavity: Span = span()
    waist: Span = span()
    cortex: Span = span()
    posterior_element_cortex: Span = span()


@dataclass(frozen=True, kw_only=True)
class VertebraSize:
    """Full dimensions of one vertebral body (mm) and its wedge angle; ``ala_width`` for the sacrum."""

    height: float = real(1.0)
    depth: float = real(1.0)
    width: float = real(1.0)
    wedge_deg: float = real()
    ala_width: float = omissible(real(0.0), 0.0)


@dataclass(frozen=True, kw_only=True)
class TransitionalScale:
    height: float = real(0.1)
    depth: float = real(0.1)
    wedge_deg: float = real()


@dataclass(frozen=True, kw_only=True)
class DiscSize:
    height: float = real(0.5)
    wedge_deg: float = real()


@dataclass(frozen=True, kw_only=True)
class DiscSettings:
    bulge: Span = span()
    degenerated_bulge: Span = span()
    nucleus_depth: Span = span()
    nucleus_height: Span = span()
    nucleus_offset: Span = span()
    intranuclear_cleft: Span = span()
    pfirrmann: tuple[Choice, ...] = weight_rows()
    height_factor: Choice = weights()


@dataclass(frozen=True, kw_only=True)
class MarrowSettings:
    fat_fraction: Span = span()
    vertebra_variation: float = real(0.0)
    texture_amplitude: Span = span()
    texture_scale: Span = span()
    basivertebral_vein: float = unit_interval()
    posterior_element_fat_offset: float = real(-1.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class PosteriorElementSettings:
    pedicle_length: Span = span()
    pedicle_radius_lateral: Span = span()
    pedicle_radius_vertical: Span = span()
    lamina_thickness: Span = span()
    spinous_length: Span = span()
    spinous_height: Span = span()
    spinous_thickness: Span = span()
    spinous_angle_deg: Span = span()
    thoracic_spinous_angle_deg: Span = span()
    facet_radius: Span = span()
    transverse_length: Span = span()
    transverse_radius: Span = span()


@dataclass(frozen=True, kw_only=True)
class CanalSettings:
    depth: Span = span()
    half_width: Span = span()
    sac_depth_fraction: Span = span()
    anterior_epidural: Span = span()
    anterior_epidural_l5s1: Span = span()
    cord_radius: Span = span()
    conus_below_top_lumbar: Span = span()
    cauda_equina_roots: Count = count()
    root_radius: Span = span()
    ligamentum_flavum: Span = span()


@dataclass(frozen=True, kw_only=True)
class SoftTissueSettings:
    """Field names are those of :class:`modic.synth.anatomy.SoftTissue`, which draws one value of each."""

    skin: float = real(0.1)
    back_fat: Span = span()
    gluteal_fat_extra: Span = span()
    muscle_beyond_spinous: Span = span()
    muscle_half_width: Span = span()
    psoas_radius: Span = span()
    belly_fat: Span = span()
    abdominal_wall_muscle: Span = span()
    abdomen_depth: Span = span()
    belly_curvature: Span = span()
    body_half_width: Span = span()
    muscle_fat_streaks: Span = span()
    bowel_fill: Span = span()
    bladder_radius: Span = span()
    liver_above_top_lumbar: Span = span()


@dataclass(frozen=True, kw_only=True)
class AnatomySettings:
    size_scale: Span = span()
    sacral_slope_deg: Span = span()
    lordosis_scale: Span = span()
    kyphosis_scale: Span = span()
    sacral_curve_scale: Span = span()
    levels_above_s1: int = whole(6)
    body: BodySettings
    lumbar: tuple[VertebraSize, ...]
    thoracic: tuple[VertebraSize, ...]
    sacral: tuple[VertebraSize, ...]
    transitional_s1_scale: TransitionalScale
    lumbar_discs: tuple[DiscSize, ...]
    thoracolumbar_disc: DiscSize
    thoracic_discs: DiscSize
    sacral_remnant_height: Span = span()
    rudimentary_disc_height: Span = span()
    disc: DiscSettings
    marrow: MarrowSettings
    posterior_elements: PosteriorElementSettings
    canal: CanalSettings
    soft_tissue: SoftTissueSettings


@dataclass(frozen=True, kw_only=True)
class ModicSettings:
    """Random Modic changes (when none are given to plant)."""

    probability: float = unit_interval()
    levels: Choice = weights()
    level_weights: Choice = weights()
    kissing: float = unit_interval()
    types: Choice = weights()
    depth_fraction: Span = span()
    ap_fraction: Span = span()
    lateral_fraction: Span = span()
    mixed_split: Span = span()
    irregularity: Span = span()
    disc_pfirrmann: Count = count()
    schmorl_node: float = unit_interval()
    schmorl_radius: Span = span()


@dataclass(frozen=True, kw_only=True)
class Offsets:
    """Offsets along the left-right, anterior-posterior and superior-inferior axes (mm)."""

    lr: Span = span()
    ap: Span = span()
    si: Span = span()


@dataclass(frozen=True, kw_only=True)
class PlanningSettings:
    pose_rotation_deg: tuple[float, ...] = reals(3)
    pose_offset: Offsets
    obliquity_deg: tuple[float, ...] = reals(3)
    fov_offset: Offsets
    sacrum_margin: float = real(0.0)


@dataclass(frozen=True, kw_only=True)
class SeriesProtocolSettings:
    """What every written series states: description and series number."""

    description: str = text()
    number: int = whole(1)


@dataclass(frozen=True, kw_only=True)
class AcquiredSeriesSettings(SeriesProtocolSettings):
    """A series that is acquired: its sequence, in-plane grid, noise and scale.

    ``ti`` (inversion time by field strength) is for ``kind: ir``;
    ``echo_train_length`` and ``fat_suppression`` default to 1 and 0.
    """

    weighting: str = text()
    kind: str = word("se", "ir", "gre")
    tr: Span = span()
    te: Span = span()
    ti: tuple[tuple[float, Span], ...] | None = omissible(spans_by_field())
    echo_train_length: Count | None = omissible(count())
    flip_angle: Span = span()
    fat_suppression: Span | None = omissible(span())
    fov: Span = span()
    matrix: Choice = matrix()
    acquired_resolution: Span = span()
    snr: Span = span()
    max_value: Span = span()


@dataclass(frozen=True, kw_only=True)
class SagittalSeriesSettings(AcquiredSeriesSettings):
    """The T1 series, planned on its own slice stack."""

    slice_thickness: Span = span()
    slice_gap: Span = span()
    n_slices: Count = count()


@dataclass(frozen=True, kw_only=True)
class T2SeriesSettings(SagittalSeriesSettings):
    """The T2 series: its own slices and grid, or by chance those of the T1."""

    same_slices: float = unit_interval()
    same_in_plane: float = unit_interval()


@dataclass(frozen=True, kw_only=True)
class AxialSeriesSettings(AcquiredSeriesSettings):
    slice_thickness: Span = span()
    slice_gap: Span = span()
    slices_per_disc: Count = count()
    discs: tuple[str, ...] = levels()


@dataclass(frozen=True, kw_only=True)
class LocalizerSettings(AcquiredSeriesSettings):
    slice_thickness: Span = span()


@dataclass(frozen=True, kw_only=True)
class SeriesSettings:
    """Every series the generator can write; STIR and T2 FS take the T1's slices."""

    t1: SagittalSeriesSettings
    t2: T2SeriesSettings
    stir: AcquiredSeriesSettings
    t2fs: AcquiredSeriesSettings
    axial: AxialSeriesSettings
    localizer: LocalizerSettings
    derived: SeriesProtocolSettings

    def of(self, name: str) -> SeriesProtocolSettings:
        """The settings of series ``name`` (one of :data:`modic.synth.acquisition.SERIES_NAMES`)."""
        return getattr(self, name)  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class BiasSettings:
    coil_falloff: Span = span()
    coil_strength: Span = span()
    random: Span = span()


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    through_slice_samples: int = whole(1)
    in_plane_subpixel: float = real(0.05)
    spine_frame_step: float = real(0.1)
    marrow_texture_step: float = real(0.1)
    muscle_texture_step: tuple[float, ...] = reals(2)
    abdomen_step: float = real(0.1)
    bowel_edge_softness: Span = span()
    bias: BiasSettings


@dataclass(frozen=True, kw_only=True)
class Tissue:
    """Relaxation properties at 1.5 T of a tissue's water compartment and its fat signal fraction."""

    pd: float = real(0.0)
    t1: float = real(1.0)
    t2: float = real(0.1)
    fat_fraction: float = real(0.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class FatCompartment:
    """Shared properties of fat protons at 1.5 T (``t2_fse``: apparent T2 in fast spin echo trains)."""

    pd: float = real(0.0)
    t1: float = real(1.0)
    t2: float = real(0.1)
    t2_fse: float = real(0.1)
    t2_star: float = real(0.1)


@dataclass(frozen=True, kw_only=True)
class Tissues:
    """Every tissue the anatomy model paints, one field each."""

    skin: Tissue
    fat: Tissue
    muscle: Tissue
    csf: Tissue
    cord: Tissue
    nerve: Tissue
    annulus: Tissue
    nucleus: Tissue
    nucleus_degenerated: Tissue
    disc_remnant: Tissue
    cortex: Tissue
    marrow: Tissue
    modic1: Tissue
    modic2: Tissue
    modic3: Tissue
    ligament: Tissue
    ligamentum_flavum: Tissue
    vein: Tissue
    vena_cava: Tissue
    artery: Tissue
    bowel_wall: Tissue
    bowel_fluid: Tissue
    bowel_gas: Tissue
    stool: Tissue
    mesentery: Tissue
    liver: Tissue
    urine: Tissue

    def by_name(self) -> dict[str, Tissue]:
        """``{tissue name: tissue}`` in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True)
class TissueModelSettings:
    water_t1_scale_3t: float = real(0.5)
    fat_t1_scale_3t: float = real(0.5)
    t2_star_factor: float = real(0.01, 1.0)
    fat_compartment: FatCompartment
    tissues: Tissues


def _planted(value: Any) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise Rejected("a list of changes like {endplate: 'L4 inferior', type: 1}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class DemoSettings:
    """Read by ``modic demo``, not by the generator: the seed and the changes it plants."""

    seed: int = whole(0)
    modic: tuple[Mapping[str, Any], ...] = setting(_planted)


@dataclass(frozen=True, kw_only=True)
class SynthSettings:
    """Everything the generator reads; ``name`` is recorded in truth.json."""

    name: str = text()
    study_key: str = template()
    patient: PatientSettings
    scanner: ScannerSettings
    variants: VariantSettings
    anatomy: AnatomySettings
    modic: ModicSettings
    planning: PlanningSettings
    series: SeriesSettings
    render: RenderSettings
    tissue_model: TissueModelSettings
    demo: DemoSettings | None = None


# Loading -----------------------------------------------------------------------------------------

SynthSource = SynthSettings | str | Path | Mapping[str, Any] | None
"""What :func:`load_synth_settings` accepts: settings, a shipped name, a YAML file, a partial mapping, or None."""


def load_synth_settings(source: SynthSource = None) -> SynthSettings:
    """The generator's settings: ``default.yaml`` with ``source`` (and what it ``extends``) merged on top.

    Args:
        source: a shipped name (``"tiny"``), a YAML file or a mapping holding
            only the keys to change, optionally ``extends: <shipped name>``
            (default ``default``); settings already built are returned as they
            are; None gives the shipped default.

    Raises:
        ConfigError: one line naming the file and the dotted key: an unknown
            key (with the closest spelling), a value of the wrong type or out
            of range (quoted, with what is accepted), or an ``extends`` that
            names no shipped config or loops.
    """
    if isinstance(source, SynthSettings):
        return source
    if isinstance(source, Mapping):
        layers = _chain(copy.deepcopy(dict(source)), "(mapping given in Python)")
    else:
        path = resolve_config(BASE if source is None else source, folder=CONFIG_FOLDER)
        layers = _chain(_load(path), str(path))
    settings = build(SynthSettings, layers, see=SEE)
    _check_inversion_times(settings, layers)
    return settings


def _chain(data: dict[str, Any], file: str) -> list[Layer]:
    """The layers of a config: the base first, then each config that ``extends`` it, ``data`` last."""
    base = str(resolve_config(BASE, folder=CONFIG_FOLDER))
    layers: list[Layer] = []
    seen = [file]
    while True:
        parent = data.pop("extends", None if file == base else BASE)
        layers.insert(0, Layer(data, file))
        if parent is None:
            return layers
        if not isinstance(parent, str):
            raise ConfigError(f"config {file}: 'extends' is {parent!r}; expected the name of a shipped synth config")
        parent_path = str(resolve_config(parent, folder=CONFIG_FOLDER))
        if parent_path in seen:
            raise ConfigError(f"config {file}: 'extends' chain loops back to '{parent_path}'; break the loop")
        seen.append(parent_path)
        data, file = _load(Path(parent_path)), parent_path


def _check_inversion_times(settings: SynthSettings, layers: list[Layer]) -> None:
    """An inversion-recovery series needs ``ti``, which the per-field checks cannot see."""
    for field in dataclasses.fields(settings.series):
        series = getattr(settings.series, field.name)
        if isinstance(series, AcquiredSeriesSettings) and series.kind == "ir" and series.ti is None:
            raise ConfigError(
                f"config {layers[-1].file}: 'series.{field.name}' has kind 'ir' but no 'ti'; "
                "add ti: {1.5: [low, high], 3.0: [low, high]} (inversion time in ms by field strength)"
            )


def _load(path: Path) -> dict[str, Any]:
    """A YAML file's mapping, parsed once per file version (generating many studies re-reads it often)."""
    stat = path.stat()
    return copy.deepcopy(_parsed(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parse ``path``; the modification time and size only key the cache."""
    del mtime_ns, size
    return load_yaml(path)


def chance(rng: np.random.Generator, probability: float) -> bool:
    """True with ``probability`` (one draw from the stream)."""
    return bool(rng.random() < probability)
