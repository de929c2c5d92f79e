"""Calibrated probability that an endplate, and a level, shows a Modic change.

Radiologists grade levels, and a level is changed when either of its two
endplates is. The presence model is a logistic regression over signal
features of one endplate band and of the adjacent disc's degeneration
(:mod:`modic.classification.disc`), combined over the two endplates of a level by
noisy-OR: ``P(level) = 1 - (1 - p_upper) * (1 - p_lower)``. It is fitted by
maximum likelihood on the level labels (multiple-instance learning), so the
level probability is calibrated by construction and each endplate's
probability is its share of the evidence. Three variants exist, for the
sequences a study has: T1+T2, T1 only and T2 only; a T2-only study thus gets
a presence probability although its type stays undetermined.

The models are stored as plain JSON (standardisation, weights, bias and the
level decision threshold), written by ``modic train presence``, together with
the model of which type a change is (:mod:`modic.classification.type_probability`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize

from modic.classification.disc import DiscSignal
from modic.classification.features import EndplateFeatures, SignalStats
from modic.classification.type_probability import TypeModel
from modic.errors import ModelError

MODEL_FILE = "presence.json"
"""File of a presence bundle (under ``configs/``) holding every variant."""

SEQUENCES: dict[str, tuple[str, ...]] = {"t1t2": ("t1", "t2"), "t1": ("t1",), "t2": ("t2",)}
"""Which sequences each variant reads."""

SIGNAL_FEATURES = ("ratio_p10", "ratio_p25", "ratio_median", "ratio_p75", "ratio_p90", "high_fraction", "low_fraction")
"""Per sequence: the band's signal relative to the reference marrow (:class:`SignalStats`)."""

DISC_SIGNAL_FEATURES = ("ratio_median", "ratio_p90", "patient_ratio_p90")
"""Per sequence: the adjacent disc's signal (:class:`DiscSignal`)."""

DISC_PREFIX = "disc_"
"""Names of the disc features start with this; an unsegmented disc leaves them at the training mean."""


def feature_names(variant: str) -> tuple[str, ...]:
    """Names of the presence vector of ``variant``, in order."""
    sequences = SEQUENCES[variant]
    return (
        tuple(f"{seq}_{name}" for seq in sequences for name in SIGNAL_FEATURES)
        + ("band_depth_fraction", f"{DISC_PREFIX}height_ratio", f"{DISC_PREFIX}patient_height_ratio")
        + tuple(f"{DISC_PREFIX}{seq}_{name}" for seq in sequences for name in DISC_SIGNAL_FEATURES)
    )


def variant_of(features: EndplateFeatures) -> str | None:
    """The variant for the sequences measured in this band (None: neither, or an empty band)."""
    if features.band_voxels == 0:
        return None
    if features.both_sequences:
        return "t1t2"
    if features.t1 is not None:
        return "t1"
    return "t2" if features.t2 is not None else None


def presence_vector(features: EndplateFeatures, variant: str) -> np.ndarray:
    """The features of ``variant`` from one band (:func:`feature_names` order)."""
    values: list[float] = []
    for seq in SEQUENCES[variant]:
        stats: SignalStats | None = getattr(features, seq)
        if stats is None:
            raise ValueError(f"the band has no {seq.upper()} signal; variant {variant!r} needs it")
        values += [float(getattr(stats, name)) for name in SIGNAL_FEATURES]
    values.append(float(features.band_depth_fraction))
    disc = features.disc
    values += [disc.height_ratio, disc.patient_height_ratio] if disc is not None else [np.nan, np.nan]
    for seq in SEQUENCES[variant]:
        signal: DiscSignal | None = getattr(disc, seq) if disc is not None else None
        values += [float(getattr(signal, name)) if signal else np.nan for name in DISC_SIGNAL_FEATURES]
    return np.asarray(values, dtype=float)


def _optional(variant: str) -> np.ndarray:
    """Which features of ``variant`` may be missing (the disc's): they then add no evidence."""
    return np.asarray([name.startswith(DISC_PREFIX) for name in feature_names(variant)])


def standardise(rows: np.ndarray, mean: np.ndarray, scale: np.ndarray, variant: str) -> np.ndarray:
    """``(rows - mean) / scale``, a missing disc feature set to 0 (the training mean: no evidence either way)."""
    z = (np.asarray(rows, dtype=float) - mean) / scale
    return np.where(np.isnan(z) & _optional(variant), 0.0, z)


def noisy_or(probabilities: Sequence[float]) -> float:
    """Probability that at least one of independent events happens."""
    return float(1.0 - np.prod([1.0 - p for p in probabilities]))


@dataclass(frozen=True)
class PresenceModel:
    """One fitted variant: standardised features -> endplate probability; ``threshold`` calls a level changed."""

    variant: str
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    threshold: float

    def endplate_probability(self, vector: np.ndarray) -> float:
        """Probability that the band whose features are ``vector`` is changed."""
        z = standardise(vector, self.mean, self.scale, self.variant)
        if not np.all(np.isfinite(z)):
            return float("nan")
        return float(1.0 / (1.0 + np.exp(-(z @ self.weights + self.bias))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "features": list(feature_names(self.variant)),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "weights": [float(v) for v in self.weights],
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> PresenceModel:
        variant = data.get("variant")
        if variant not in SEQUENCES:
            raise ModelError(f"{source}: presence variant {variant!r} is not one of {', '.join(SEQUENCES)}")
        expected = list(feature_names(variant))
        if list(data.get("features", [])) != expected:
            raise ModelError(
                f"{source}: the {variant} presence model was fitted on features {data.get('features')}, "
                f"this modic computes {expected}; retrain it with `modic train presence`"
            )
        arrays = [np.asarray(data[k], dtype=float) for k in ("mean", "scale", "weights")]
        if any(a.shape != (len(expected),) for a in arrays) or np.any(arrays[1] <= 0):
            raise ModelError(f"{source}: the {variant} presence model's mean/scale/weights do not fit its {len(expected)} features")
        return cls(variant, *arrays, bias=float(data["bias"]), threshold=float(data["threshold"]))


def fit_presence(
    bags: Sequence[np.ndarray], labels: Sequence[int], *, variant: str, l2: float, threshold: float = 0.5
) -> PresenceModel:
    """Fit a variant on levels: ``bags[i]`` holds the feature rows of level ``i``'s endplates, ``labels[i]`` 0/1.

    Maximises the noisy-OR likelihood of the level labels with an L2 penalty
    ``l2`` on the standardised weights (L-BFGS). Features are standardised by
    the mean and spread of their measured values; an unmeasured disc feature
    then sits at 0, the mean (:func:`standardise`).
    """
    rows = np.vstack(bags)
    measured = np.isfinite(rows)
    count = np.maximum(measured.sum(axis=0), 1)
    mean = np.where(measured, rows, 0.0).sum(axis=0) / count
    scale = np.sqrt(np.where(measured, (rows - mean) ** 2, 0.0).sum(axis=0) / count)
    scale[scale < 1e-6] = 1.0
    standardised = [standardise(b, mean, scale, variant) for b in bags]
    targets = np.asarray(labels, dtype=float)
    n_features = rows.shape[1]

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = params[:n_features], params[n_features]
        loss = float(l2 * weights @ weights)
        gradient = np.zeros_like(params)
        gradient[:n_features] = 2 * l2 * weights
        for z, y in zip(standardised, targets):
            p = np.clip(1.0 / (1.0 + np.exp(-(z @ weights + bias))), 1e-9, 1 - 1e-9)
            none = float(np.prod(1.0 - p))
            level = min(max(1.0 - none, 1e-9), 1 - 1e-9)
            loss -= y * np.log(level) + (1 - y) * np.log(1 - level)
            d_level = -(y / level - (1 - y) / (1 - level))
            d_logit = d_level * (none / (1.0 - p)) * p * (1.0 - p)
            gradient[:n_features] += d_logit @ z
            gradient[n_features] += d_logit.sum()
        return loss, gradient

    result = minimize(loss_and_gradient, np.zeros(n_features + 1), jac=True, method="L-BFGS-B")
    return PresenceModel(variant, mean, scale, result.x[:n_features], float(result.x[n_features]), threshold)


def level_probabilities(model: PresenceModel, bags: Sequence[np.ndarray]) -> np.ndarray:
    """Noisy-OR level probability of each bag."""
    return np.asarray([noisy_or([model.endplate_probability(row) for row in bag]) for bag in bags])


@dataclass(frozen=True)
class PresenceModels:
    """The variants of one presence bundle, the type model (None in bundles without one) and what reports say."""

    variants: dict[str, PresenceModel]
    info: dict[str, Any]
    types: TypeModel | None = None

    def for_features(self, features: EndplateFeatures) -> PresenceModel | None:
        variant = variant_of(features)
        return self.variants.get(variant) if variant else None

    @classmethod
    def load(cls, bundle: Path) -> PresenceModels:
        """Read ``bundle/configs/presence.json`` (see :func:`write_presence_bundle`)."""
        path = bundle / "configs" / MODEL_FILE
        if not path.is_file():
            raise ModelError(f"presence model '{path}' not found; train one with `modic train presence` or set classification.presence_bundle to null")
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ModelError(f"presence model '{path}' is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        variants = {
            name: PresenceModel.from_dict(entry, source=str(path)) for name, entry in data.get("variants", {}).items()
        }
        if not variants:
            raise ModelError(f"presence model '{path}' holds no variant; retrain it with `modic train presence`")
        types = TypeModel.from_dict(data["type_model"], source=str(path)) if "type_model" in data else None
        info = {
            "bundle": bundle.name,
            "version": str(data.get("version", "unknown")),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "thresholds": {name: model.threshold for name, model in variants.items()},
            "type_model": types is not None,
        }
        return cls(variants, info, types)
