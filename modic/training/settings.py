"""Typed, frozen settings of the training commands (``configs/seg/*.yaml``, ``configs/grade/*.yaml``,
``configs/presence/*.yaml``, ``configs/orientation/*.yaml``).

Built by the settings builder (:mod:`modic.settings.build`) like the analysis
settings: every value is checked once, when the file is read, and a problem is
one :class:`~modic.errors.ConfigError` line naming the file and the dotted key
(with the closest spelling for a misspelt key). Overrides (``--lumbar-seg``,
``--epochs``, or a mapping given in Python) are a layer merged on top of the
file, key by key within sections, as ``--config`` is for the analysis settings;
lists and tables are replaced whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from modic.config import load_yaml
from modic.errors import ConfigError
from modic.segmentation.bundle import PreprocessSettings, network_input_channels
from modic.settings.build import Layer, build, to_dict
from modic.settings.fields import (
    FrozenMap,
    Rejected,
    choice,
    flag,
    number,
    omissible,
    optional,
    positive,
    setting,
    text,
)

RESUMABLE_SCHEDULE_KEYS = ("epochs", "validate_every")
"""``training`` keys a segmentation run may change on resume (see :meth:`SegTrainSettings.fingerprint`)."""


def _names() -> Any:
    """A list (possibly empty) of names, as a tuple of texts (YAML numbers such as patient ``45`` included)."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise Rejected("a list of names")
        return tuple(str(v) for v in value)

    return setting(check)


def _mapping() -> Any:
    """A mapping with text keys (a network definition for MONAI's bundle parser), as a :class:`FrozenMap`."""

    def check(value: Any) -> FrozenMap:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise Rejected("a mapping such as {_target_: UNet, ...}")
        return FrozenMap(value)

    return setting(check)


def _shares() -> Any:
    """A mapping of source names to non-negative numbers, as a :class:`FrozenMap`."""

    def check(value: Any) -> FrozenMap:
        ok = isinstance(value, Mapping) and value and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in value.items()
        )
        if not ok:
            raise Rejected("a mapping of source names to shares, e.g. {VB1: 0.5, synthetic: 0.5}")
        return FrozenMap(value)

    return setting(check)


def _number_pair(low: float | None = None) -> Any:
    """Two numbers ``[a, b]`` with ``a <= b`` (each at least ``low``), as a tuple."""

    def check(value: Any) -> tuple[float, float]:
        ok = isinstance(value, list) and len(value) == 2
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ok = ok and value[0] <= value[1] and (low is None or value[0] >= low)
        if not ok:
            raise Rejected("two numbers [low, high] with low <= high" + (f" and low >= {low}" if low is not None else ""))
        return (value[0], value[1])

    return setting(check)


def _integer(low: int) -> Any:
    return number(low, integer=True)


def _modic_types(value: Any) -> tuple[int, ...]:
    """A check: a list of Modic types 1 to 3, as a tuple."""
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 3
                                              for v in value):
        raise Rejected("a list of Modic types 1, 2, 3")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class SyntheticData:
    """Synthetic studies added to the training data (``data.synthetic``)."""

    count: int = _integer(0)
    config: str = omissible(text(), "default")
    seed_start: int = omissible(_integer(0), 0)


# Segmentation training (modic train seg) ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SegDataSettings:
    """Where the training cases come from and how samples are drawn (``data``)."""

    lumbar_seg: str | None = optional(text())
    validation_cases: tuple[str, ...] = omissible(_names(), ())
    max_training_cases: int | None = omissible(optional(_integer(1)))
    spider_t2space: str | None = omissible(optional(text()))
    spider_t2space_validation: tuple[str, ...] = omissible(_names(), ())
    synthetic: SyntheticData | None = None
    source_share: FrozenMap = _shares()
    foreground_fraction: float = omissible(number(0, 1), 0.85)
    max_slab_thickness: int = omissible(_integer(1), 1)
    slice_context_mm: float = omissible(number(0), 0.0)


@dataclass(frozen=True, kw_only=True)
class SegTrainingSchedule:
    """Optimiser and schedule (``training``); ``epochs`` and ``validate_every`` may change on resume."""

    epochs: int = _integer(1)
    iterations_per_epoch: int = _integer(1)
    batch_size: int = _integer(1)
    learning_rate: float = number(0)
    weight_decay: float = number(0)
    warmup_epochs: int = omissible(_integer(0), 1)
    num_workers: int = omissible(_integer(0), 0)
    validate_every: int = omissible(_integer(1), 1)
    amp: bool = omissible(flag(), True)
    initial_weights: str | None = omissible(optional(text()))


@dataclass(frozen=True, kw_only=True)
class LossSettings:
    """Weights of the Dice and cross-entropy terms of :class:`~modic.training.losses.MarginalDiceCELoss`."""

    lambda_dice: float = omissible(number(0), 1.0)
    lambda_ce: float = omissible(number(0), 1.0)


@dataclass(frozen=True, kw_only=True)
class AugmentationSettings:
    """The random augmentations of :func:`modic.training.transforms.training_transforms` (``augmentation``)."""

    crop_size: int = _integer(8)
    context_size: int | None = omissible(optional(_integer(8)))
    positive_ratio: float = number(0)
    bias_field_prob: float = number(0, 1)
    bias_field_coeff: tuple[float, float] = _number_pair(0)
    affine_prob: float = number(0, 1)
    rotate_rad: float = number(0)
    scale: float = number(0)
    shear: float = number(0)
    translate_px: float = number(0)
    smooth_prob: float = number(0, 1)
    noise_prob: float = number(0, 1)
    noise_std: float = number(0)
    gamma_prob: float = number(0, 1)
    gamma: tuple[float, float] = _number_pair(0)
    scale_intensity_prob: float = number(0, 1)
    scale_intensity: float = number(0)
    histogram_shift_prob: float = number(0, 1)
    low_resolution_prob: float = omissible(number(0, 1), 0.0)
    low_resolution_zoom: tuple[float, float] = omissible(_number_pair(0), (0.7, 1.0))
    window_8bit_prob: float = omissible(number(0, 1), 0.0)
    marrow_signal_prob: float = omissible(number(0, 1), 0.0)
    marrow_signal_factor: tuple[float, float] = omissible(_number_pair(0), (0.5, 2.0))


@dataclass(frozen=True, kw_only=True)
class SegExportSettings:
    """Where the trained network is exported as a bundle (``export``; ``--export`` replaces it); segmentation and orientation."""

    bundle_dir: str | None = omissible(optional(text()))


@dataclass(frozen=True, kw_only=True)
class SegTrainSettings:
    """A segmentation training config (``configs/seg/train.yaml`` documents every key)."""

    name: str | None = omissible(optional(text()))
    seed: int = omissible(_integer(0), 0)
    output_dir: str | None = omissible(optional(text()))
    data: SegDataSettings
    preprocessing: PreprocessSettings
    network_def: FrozenMap = _mapping()
    training: SegTrainingSchedule
    loss: LossSettings | None = None
    augmentation: AugmentationSettings
    export: SegExportSettings | None = None

    def fingerprint(self) -> str:
        """Hash of everything that shapes the weights except the schedule length.

        ``training.epochs`` and ``training.validate_every`` are left out so that a run can be
        shortened or extended on resume; every other change needs a new output folder.
        """
        values = to_dict(self)
        for key in RESUMABLE_SCHEDULE_KEYS:
            values["training"].pop(key, None)
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainConfig:
    """A segmentation training config read from ``path``: its typed ``settings``, and the name of the run."""

    settings: SegTrainSettings
    path: Path

    @property
    def name(self) -> str:
        return self.settings.name or self.path.stem

    def fingerprint(self) -> str:
        return self.settings.fingerprint()


def load_train_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The segmentation training config ``path``, with ``overrides`` (dotted keys, e.g. ``training.epochs``) on top.

    Raises:
        ConfigError: one line naming the file (or the overrides) and the dotted key.
    """
    layers = [Layer(load_yaml(path), str(path))]
    if overrides:
        layers.append(Layer(_nested(overrides), "(overrides)"))
    settings = build(SegTrainSettings, layers, see="configs/seg/train.yaml")
    _check_input_channels(settings, path)
    return TrainConfig(settings=settings, path=Path(path))


def _check_input_channels(settings: SegTrainSettings, path: str | Path) -> None:
    """The network must take the channels the samples have: 1, or 3 with ``data.slice_context_mm``."""
    expected = network_input_channels(settings.data.slice_context_mm)
    given = settings.network_def.get("in_channels", expected)
    if given != expected:
        raise ConfigError(
            f"{path}: network_def.in_channels is {given!r} but data.slice_context_mm "
            f"{settings.data.slice_context_mm:g} makes samples of {expected} channel(s); set in_channels: {expected}"
        )


# Grading training (modic train grade) ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GradeDataSettings:
    """The graded SPIDER folder and the synthetic studies added to it (``data``)."""

    spider: str = text()
    synthetic: SyntheticData | None = None


@dataclass(frozen=True, kw_only=True)
class CrossValidationSettings:
    """Patient-level cross-validation (``cross_validation``)."""

    folds: int = _integer(2)
    repeats: int = _integer(1)


@dataclass(frozen=True, kw_only=True)
class LogisticSettings:
    """The logistic-regression candidate (``candidates.logistic``)."""

    C: float = omissible(positive(), 1.0)


@dataclass(frozen=True, kw_only=True)
class GradientBoostingSettings:
    """The gradient-boosting candidate (``candidates.gradient_boosting``)."""

    max_depth: int = omissible(_integer(1), 3)
    learning_rate: float = omissible(positive(), 0.05)
    max_iter: int = omissible(_integer(1), 150)
    min_samples_leaf: int = omissible(_integer(1), 10)


@dataclass(frozen=True, kw_only=True)
class CandidateSettings:
    """The learned-model candidates cross-validated against each other; a candidate left out is not tried."""

    logistic: LogisticSettings | None = None
    gradient_boosting: GradientBoostingSettings | None = None

    def chosen(self) -> dict[str, LogisticSettings | GradientBoostingSettings]:
        """The candidates the config names, by name, in the order of the fields."""
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass(frozen=True, kw_only=True)
class PatchRuleSettings:
    """Signal patterns kept when the patch network calls an endplate unchanged (``patch_model.rules``)."""

    keep_types: tuple[int, ...] = setting(_modic_types)
    keep_fraction: float = number(0, 1)


@dataclass(frozen=True, kw_only=True)
class PatchModelSettings:
    """The patch network trained beside the candidates (``patch_model``)."""

    network_def: FrozenMap = _mapping()
    epochs: int = _integer(1)
    batch_size: int = _integer(1)
    learning_rate: float = number(0)
    weight_decay: float = number(0)
    threshold: float = number(0)
    rules: PatchRuleSettings


@dataclass(frozen=True, kw_only=True)
class GradeExportSettings:
    """Where the models are exported (``export``; ``--export`` replaces ``bundle_dir``)."""

    bundle_dir: str | None = omissible(optional(text()))
    patch_bundle_dir: str | None = omissible(optional(text()))


@dataclass(frozen=True, kw_only=True)
class GradeTrainSettings:
    """A grading training config (``configs/grade/train.yaml`` documents every key)."""

    name: str | None = omissible(optional(text()))
    seed: int = omissible(_integer(0), 0)
    output_dir: str | None = omissible(optional(text()))
    data: GradeDataSettings
    cross_validation: CrossValidationSettings
    candidates: CandidateSettings
    patch_model: PatchModelSettings | None = None
    export: GradeExportSettings | None = None


def load_grade_train_settings(path: str | Path) -> GradeTrainSettings:
    """The grading training config ``path``, checked once.

    Raises:
        ConfigError: one line naming the file and the dotted key; also when no candidate is named.
    """
    settings = build(GradeTrainSettings, [Layer(load_yaml(path), str(path))], see="configs/grade/train.yaml")
    if not settings.candidates.chosen():
        raise ConfigError(f"config {path}: 'candidates' names no candidate; give logistic and/or gradient_boosting")
    return settings


# Presence training (modic train presence) ---------------------------------------------------------------------

T2_SOURCES = ("t2space", "t2space+midsag")
"""Training sources of the T2-only presence variant: spider_t2space volumes, optionally with spider_midsag T2s."""


def _penalties(value: Any) -> tuple[float, ...]:
    """A check: a non-empty list of non-negative L2 penalties, as a tuple."""
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value
    )
    if not ok:
        raise Rejected("a non-empty list of non-negative numbers, e.g. [1.0, 10.0]")
    return tuple(float(v) for v in value)


def _t2_sources(value: Any) -> tuple[str, ...]:
    """A check: a non-empty list taken from :data:`T2_SOURCES`, as a tuple."""
    if not isinstance(value, list) or not value or any(v not in T2_SOURCES for v in value):
        raise Rejected(f"a non-empty list taken from {', '.join(T2_SOURCES)}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class PresenceDataSettings:
    """The graded SPIDER folders (``data``)."""

    spider_midsag: str = text()
    spider_t2space: str = text()


class ThresholdRule(str, Enum):
    """How a presence model's decision threshold is chosen on its training samples (:func:`~modic.training.presence.best_threshold`)."""

    BEST = "best"
    ONE_STANDARD_ERROR = "one_standard_error"


@dataclass(frozen=True, kw_only=True)
class PresenceTrainSettings:
    """A presence training config (``configs/presence/train.yaml`` documents every key)."""

    name: str = text()
    version: str = text()
    seed: int = omissible(_integer(0), 0)
    data: PresenceDataSettings
    cross_validation: CrossValidationSettings
    l2: tuple[float, ...] = setting(_penalties)
    t2_sources: tuple[str, ...] = setting(_t2_sources)
    strong_pattern_fraction: float = number(0, 1)
    strong_type1_fraction: float = number(0, 1)
    type_l2: float = omissible(number(0), 1.0)
    threshold_rule: ThresholdRule = omissible(choice(ThresholdRule), ThresholdRule.BEST)
    min_specificity: float = omissible(number(0, 1), 0.0)


def load_presence_train_settings(path: str | Path) -> PresenceTrainSettings:
    """The presence training config ``path``, checked once.

    Raises:
        ConfigError: one line naming the file and the dotted key.
    """
    return build(PresenceTrainSettings, [Layer(load_yaml(path), str(path))], see="configs/presence/train.yaml")


# Orientation training (modic train orientation) -------------------------------------------------------------


def _offsets(value: Any) -> tuple[int, ...]:
    """A check: a non-empty list of integer slice offsets, as a tuple."""
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Rejected("a non-empty list of integer slice offsets, e.g. [-5, 0, 5]")
    return tuple(value)


def _thresholds(value: Any) -> tuple[float, ...]:
    """A check: a non-empty list of numbers between 0 and 1, as a tuple (numbers as written)."""
    ok = isinstance(value, list) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value
    )
    if not ok:
        raise Rejected("a non-empty list of numbers between 0 and 1, e.g. [0.5, 0.9]")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class OrientationSyntheticData(SyntheticData):
    """Synthetic studies added to the orientation training pictures (``data.synthetic``), and their slices."""

    offsets: tuple[int, ...] = setting(_offsets)


@dataclass(frozen=True, kw_only=True)
class OrientationDataSettings:
    """The labelled datasets whose training halves give the pictures (``data``)."""

    spider_midsag: str = text()
    spider_t2space: str = text()
    lumbar_seg: str = text()
    volume_offsets: tuple[int, ...] = setting(_offsets)
    synthetic: OrientationSyntheticData | None = None


@dataclass(frozen=True, kw_only=True)
class OrientationViewSettings:
    """Side of the network's picture and of the stored training pictures (``view``)."""

    size: int = _integer(1)
    training_size: int = _integer(1)


@dataclass(frozen=True, kw_only=True)
class OrientationTrainingSchedule:
    """The network, optimiser and schedule (``training``)."""

    network_def: FrozenMap = _mapping()
    epochs: int = _integer(1)
    batch_size: int = _integer(1)
    learning_rate: float = number(0)
    weight_decay: float = number(0)
    threads: int = _integer(1)


@dataclass(frozen=True, kw_only=True)
class OrientationCrossValidationSettings:
    """Patient-level folds of the training half (``cross_validation``; no repeats, unlike grading)."""

    folds: int = _integer(2)


@dataclass(frozen=True, kw_only=True)
class OrientationTrainSettings:
    """An orientation training config (``configs/orientation/train.yaml`` documents every key)."""

    name: str | None = omissible(optional(text()))
    seed: int = omissible(_integer(0), 0)
    output_dir: str | None = omissible(optional(text()))
    data: OrientationDataSettings
    view: OrientationViewSettings
    training: OrientationTrainingSchedule
    cross_validation: OrientationCrossValidationSettings
    threshold_candidates: tuple[float, ...] = setting(_thresholds)
    export: SegExportSettings | None = None


def load_orientation_train_settings(path: str | Path) -> OrientationTrainSettings:
    """The orientation training config ``path``, checked once.

    Raises:
        ConfigError: one line naming the file and the dotted key.
    """
    return build(OrientationTrainSettings, [Layer(load_yaml(path), str(path))], see="configs/orientation/train.yaml")


def _nested(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"data.lumbar_seg": x}`` as ``{"data": {"lumbar_seg": x}}``."""
    nested: dict[str, Any] = {}
    for key, value in dotted.items():
        target = nested
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return nested
