"""Type probabilities: fitting on level types, calibration, bundle round trip, grading and report fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modic.classification.grading import with_type_probabilities
from modic.classification.presence import PresenceModel, PresenceModels
from modic.classification.type_probability import (
    TypeModel,
    fit_type_model,
    fraction_row,
    level_fraction_row,
    multiclass_brier,
)
from modic.errors import ModelError
from modic.report.json_report import _type_probabilities
from modic.report.tables import LEVEL_COLUMNS, _type_columns
from modic.results import EndplateGrade, LevelGrade
from modic.training.presence import write_presence_bundle
from tests.helpers.features import band


def sample(n: int, prevalence: tuple[float, float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Types drawn with ``prevalence``; each band shows its type's pattern over 0.2-0.8 of it, others 0-0.2."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([1, 2, 3], size=n, p=prevalence)
    rows = rng.uniform(0.0, 0.2, (n, 3))
    rows[np.arange(n), labels - 1] += rng.uniform(0.2, 0.8, n)
    return rows, labels


def test_fit_learns_the_prior_and_the_pattern_weight_and_is_calibrated():
    rows, labels = sample(600, (0.05, 0.85, 0.10), seed=0)
    model = fit_type_model(rows, labels, l2=0.1)
    assert model.weight > 3.0
    # calibration in the large: mean predicted probability of each type matches its frequency
    predicted = np.vstack([model.given_change(r) for r in rows])
    for k in (1, 2, 3):
        assert predicted[:, k - 1].mean() == pytest.approx(np.mean(labels == k), abs=0.02)
    # a strong type 1 pattern beats the prior; no pattern leaves type 2, the prevalent type, ahead
    assert np.argmax(model.given_change(np.array([0.7, 0.05, 0.05]))) == 0
    assert np.argmax(model.given_change(np.array([0.05, 0.05, 0.05]))) == 1
    # held out, the model beats the prior alone
    test_rows, test_labels = sample(400, (0.05, 0.85, 0.10), seed=1)
    prior = fit_type_model(rows, labels, l2=1e9)
    assert abs(prior.weight) < 1e-6

    def brier(m: TypeModel) -> float:
        table = np.vstack([[m.probabilities(1.0, r)[k] for k in range(4)] for r in test_rows])
        return multiclass_brier(table, test_labels)

    assert brier(model) < brier(prior) - 0.05


def test_a_type_absent_from_the_data_keeps_a_small_finite_prior():
    rows, labels = sample(300, (0.0, 1.0, 0.0), seed=2)
    model = fit_type_model(rows, labels, l2=1.0)
    q = model.given_change(np.array([0.1, 0.5, 0.1]))
    assert np.all(np.isfinite(model.log_prior)) and 0.0 < q[0] < 0.02 and 0.0 < q[2] < 0.02


def test_probabilities_sum_to_one_and_scale_with_the_change_probability():
    model = TypeModel(np.log(np.array([0.05, 0.85, 0.10])), 5.0)
    p = model.probabilities(0.3, np.array([0.1, 0.4, 0.0]))
    assert sum(p.values()) == pytest.approx(1.0) and p[0] == pytest.approx(0.7)
    assert p[2] > p[1] > 0 and p[2] < 0.3


def test_fit_refuses_rows_and_labels_that_do_not_fit():
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        fit_type_model(np.zeros((4, 2)), [1, 2, 2, 3], l2=1.0)
    with pytest.raises(ValueError, match=r"Modic types"):
        fit_type_model(np.zeros((2, 3)), [0, 2], l2=1.0)


def test_rows_need_both_sequences():
    assert fraction_row({1: 0.1, 2: 0.2, 3: 0.3}).tolist() == [0.1, 0.2, 0.3]
    assert fraction_row({2: 0.2}) is None
    assert level_fraction_row([None, np.array([0.1, 0.5, 0.0]), np.array([0.3, 0.1, 0.0])]).tolist() == [0.3, 0.5, 0.0]
    assert level_fraction_row([None, None]) is None


def test_bundle_round_trip_with_a_type_model(tmp_path: Path):
    presence = PresenceModel("t2", np.zeros(13), np.ones(13), np.zeros(13), 0.0, threshold=0.5)
    types = TypeModel(np.array([-4.0, 0.0, -3.0]), 6.0)
    write_presence_bundle(tmp_path / "b", {"t2": presence}, types=types, version="1", metadata={})
    loaded = PresenceModels.load(tmp_path / "b")
    assert loaded.types is not None and loaded.info["type_model"] is True
    assert loaded.types.weight == 6.0 and loaded.types.log_prior.tolist() == [-4.0, 0.0, -3.0]
    with pytest.raises(ModelError, match="retrain it"):
        TypeModel.from_dict({"types": [1, 2, 3], "log_prior": [0.0], "weight": 1.0}, source="x")
    write_presence_bundle(tmp_path / "c", {"t2": presence}, types=None, version="1", metadata={})
    assert PresenceModels.load(tmp_path / "c").types is None


def grade(endplate: str, *, p: float, fractions: dict[int, float], t1: float | None = 1.0) -> EndplateGrade:
    return EndplateGrade(
        endplate=endplate, level="L4-L5", modic_type=0, mixed=None, confidence=0.8, scores={}, method="rules",
        region_fraction=0.0, height_fraction=0.0, features=band(endplate, t1=t1, fractions=fractions),
        presence_probability=p,
    )


def test_levels_and_endplates_get_type_probabilities_only_with_both_sequences():
    model = TypeModel(np.log(np.array([0.01, 0.97, 0.02])), 8.0)
    level = LevelGrade(
        "L4-L5", 0, None, 0.8,
        (grade("L4 inferior", p=0.6, fractions={1: 0.7, 2: 0.0, 3: 0.0}),
         grade("L5 superior", p=0.1, fractions={1: 0.0, 2: 0.1, 3: 0.0})),
        presence_probability=0.64, changed=True,
    )
    typed = with_type_probabilities(level, model)
    upper, lower = typed.endplates
    assert sum(upper.type_probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert upper.type_probabilities[0] == pytest.approx(0.4)
    assert upper.type_probabilities[1] > upper.type_probabilities[2]  # a strong type 1 pattern beats its prior
    assert lower.type_probabilities[2] > lower.type_probabilities[1]
    assert typed.type_probabilities[0] == pytest.approx(0.36)
    t1_only = replace_t1(level)
    assert with_type_probabilities(t1_only, model).type_probabilities is None


def replace_t1(level: LevelGrade) -> LevelGrade:
    from dataclasses import replace

    return replace(level, endplates=tuple(
        replace(g, features=band(g.endplate, t1=1.0, t2=None, fractions={1: 0.5})) for g in level.endplates
    ))


def test_reports_write_the_four_type_probabilities():
    assert _type_probabilities({0: 0.5, 2: 0.4, 1: 0.05, 3: 0.05}) == {"0": 0.5, "1": 0.05, "2": 0.4, "3": 0.05}
    assert _type_probabilities(None) is None
    columns = _type_columns({"0": 0.5, "1": 0.05, "2": 0.4, "3": 0.05}, prefix="level_")
    assert columns == {"level_p_type_0": 0.5, "level_p_type_1": 0.05, "level_p_type_2": 0.4, "level_p_type_3": 0.05}
    assert set(columns) <= set(LEVEL_COLUMNS) and _type_columns(None, prefix="")["p_type_1"] == ""
