"""Calibrated probability of each Modic type at an endplate and a level.

The presence model gives ``P(change)``. Which type a change is, is modelled
given that it is a change: ``P(type k | change) = softmax_k(log_prior[k] +
weight * fraction[k])`` over types 1, 2 and 3, where ``fraction[k]`` is the
share of the marrow band showing type k's T1/T2 voxel pattern (both sequences
needed: with one, types 1 and 3 cannot be told apart). ``log_prior`` carries
the real prevalence of the types among changed levels and ``weight`` how much
a pattern moves a type away from it; both are fitted on radiologists' level
grades by ``modic train presence``. Then ``P(type 0) = 1 - P(change)`` and
``P(type k) = P(change) * P(type k | change)``: a rare type gets a high
probability only when its pattern is strong enough to beat its prior.

A level's type probabilities use its change probability and, per type, the
larger fraction of its two endplates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from modic.classification.features import EndplateFeatures
from modic.errors import ModelError

CHANGE_TYPES = (1, 2, 3)
"""The types a change can have, in the order of the model's arrays."""


def fraction_row(fractions: Mapping[int, float]) -> np.ndarray | None:
    """The band's pattern fractions as a (3,) array, or None when a type's fraction is missing (one sequence)."""
    values = [fractions.get(k) for k in CHANGE_TYPES]
    if any(v is None or not np.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=float)


def band_row(features: EndplateFeatures) -> np.ndarray | None:
    """The pattern fractions of a band read on T1 and T2 (None with one sequence: types 1 and 3 look alike)."""
    if not features.both_sequences:
        return None
    return fraction_row(features.pattern_fractions)


def level_fraction_row(rows: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Per type the larger fraction of a level's endplates (None when no endplate has both sequences)."""
    present = [r for r in rows if r is not None]
    return np.max(np.vstack(present), axis=0) if present else None


@dataclass(frozen=True)
class TypeModel:
    """``P(type | change)`` from pattern fractions (module docstring)."""

    log_prior: np.ndarray
    weight: float

    def given_change(self, row: np.ndarray) -> np.ndarray:
        """``P(type k | change)`` for k = 1, 2, 3."""
        logits = self.log_prior + self.weight * np.asarray(row, dtype=float)
        logits = logits - logits.max()
        odds = np.exp(logits)
        return odds / odds.sum()

    def probabilities(self, p_change: float, row: np.ndarray) -> dict[int, float]:
        """``{0: P(no change), 1: P(type 1), 2: ..., 3: ...}``, summing to 1."""
        given = self.given_change(row)
        result = {0: 1.0 - float(p_change)}
        result.update({k: float(p_change) * float(q) for k, q in zip(CHANGE_TYPES, given)})
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "types": list(CHANGE_TYPES),
            "log_prior": [float(v) for v in self.log_prior],
            "weight": float(self.weight),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> TypeModel:
        if list(data.get("types", [])) != list(CHANGE_TYPES):
            raise ModelError(
                f"{source}: the type model covers types {data.get('types')}, expected {list(CHANGE_TYPES)}; "
                "retrain it with `modic train presence`"
            )
        log_prior = np.asarray(data.get("log_prior", []), dtype=float)
        weight = data.get("weight")
        if log_prior.shape != (len(CHANGE_TYPES),) or not np.all(np.isfinite(log_prior)) or weight is None:
            raise ModelError(f"{source}: the type model needs 3 finite log_prior values and a weight; retrain it")
        return cls(log_prior, float(weight))


def fit_type_model(rows: np.ndarray, labels: Sequence[int], *, l2: float, pseudo_count: float = 1.0) -> TypeModel:
    """Fit on changed levels: ``rows`` (n, 3) pattern fractions, ``labels`` their types (1, 2 or 3).

    Penalised maximum likelihood (L-BFGS): ``l2`` on the weight, and
    ``pseudo_count`` samples of each type at the mean fractions, so that a
    type absent from the data keeps a small, finite prior.
    """
    rows = np.asarray(rows, dtype=float)
    targets = np.asarray(labels, dtype=int)
    if rows.ndim != 2 or rows.shape[1] != len(CHANGE_TYPES) or rows.shape[0] != targets.size:
        raise ValueError(f"rows must be (n, 3) with one label each; got {rows.shape} and {targets.size} labels")
    if not set(targets.tolist()) <= set(CHANGE_TYPES):
        raise ValueError(f"labels must be Modic types {CHANGE_TYPES}; got {sorted(set(targets.tolist()))}")
    neutral = rows.mean(axis=0) if rows.size else np.zeros(len(CHANGE_TYPES))
    all_rows = np.vstack([rows, np.tile(neutral, (len(CHANGE_TYPES), 1))])
    all_targets = np.concatenate([targets - 1, np.arange(len(CHANGE_TYPES))])
    weights = np.concatenate([np.ones(targets.size), np.full(len(CHANGE_TYPES), pseudo_count)])
    onehot = np.eye(len(CHANGE_TYPES))[all_targets]

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_prior, weight = params[:3], params[3]
        logits = log_prior[None, :] + weight * all_rows
        logits -= logits.max(axis=1, keepdims=True)
        q = np.exp(logits)
        q /= q.sum(axis=1, keepdims=True)
        loss = -float((weights * np.log(np.clip((q * onehot).sum(axis=1), 1e-12, None))).sum()) + l2 * weight**2
        residual = weights[:, None] * (q - onehot)
        gradient = np.concatenate([residual.sum(axis=0), [float((residual * all_rows).sum()) + 2 * l2 * weight]])
        return loss, gradient

    result = minimize(loss_and_gradient, np.zeros(len(CHANGE_TYPES) + 1), jac=True, method="L-BFGS-B")
    log_prior = result.x[:3] - result.x[:3].max()
    return TypeModel(log_prior, float(result.x[3]))


def multiclass_brier(probabilities: np.ndarray, truth: Sequence[int]) -> float:
    """Mean over levels of the squared distance between the type probabilities (n, 4) and the one-hot truth."""
    truth_arr = np.asarray(truth, dtype=int)
    onehot = np.eye(len(CHANGE_TYPES) + 1)[truth_arr]
    return float(np.mean(np.sum((np.asarray(probabilities, dtype=float) - onehot) ** 2, axis=1)))
