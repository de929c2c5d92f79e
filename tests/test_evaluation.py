"""Metrics of the evaluation commands on hand-worked inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from modic.evaluation.segmentation import CaseResult, score_instance_maps
from modic.evaluation.segmentation import summarise as summarise_seg
from modic.evaluation.spider import FAILED, PatientGrading, _numbers, cohen_kappa, grading_metrics
from modic.evaluation.synthetic import MISSED, imaged_truth, scored_type, summarise
from modic.datasets.lumbar_seg import LumbarSegCase
from modic.synth import generate_study

from helpers.synthetic import SYNTH_CONFIG


def test_kappa_matches_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 200)
    predicted = np.where(rng.random(200) < 0.7, truth, rng.integers(0, 4, 200))
    assert cohen_kappa(truth, predicted) == pytest.approx(cohen_kappa_score(truth, predicted))


def test_grading_metrics_hand_worked():
    results = [
        PatientGrading("1", {"L3-L4": 0, "L4-L5": 2, "L5-S1": 2}, {"L3-L4": 0, "L4-L5": 2, "L5-S1": 0}, {}),
        PatientGrading("2", {"L3-L4": 0, "L4-L5": 0, "L5-S1": 0}, {"L3-L4": 0, "L4-L5": 1, "L5-S1": 0}, {},
                       warnings=("s1_small",)),
        PatientGrading("3", {"L3-L4": 0, "L4-L5": 0, "L5-S1": 2}, {}, {}, error="no vertebral body was found"),
    ]
    metrics = grading_metrics(results)
    assert metrics["n_patients_with_warning"] == 1
    assert [p["warnings"] for p in metrics["patients"]] == [[], ["s1_small"], []]
    assert metrics["n_levels"] == 9 and metrics["n_patients"] == 3
    # presence: truth positives are 1:L4-L5, 1:L5-S1, 3:L5-S1; the failed patient counts as wrong.
    # TP = 1 (1:L4-L5); FN = 2; TN = 2:L3-L4, 2:L5-S1, 1:L3-L4 = 3; FP = 2:L4-L5 + failed 3:L3-L4, 3:L4-L5 = 3
    assert metrics["presence_sensitivity"] == pytest.approx(1 / 3, abs=1e-4)
    assert metrics["presence_specificity"] == pytest.approx(3 / 6, abs=1e-4)
    assert metrics["presence_balanced_accuracy"] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-4)
    assert metrics["confusion_matrix"]["2"]["failed"] == 1
    assert metrics["confusion_matrix"]["0"]["failed"] == 2
    assert metrics["confusion_matrix"]["0"]["1"] == 1
    # patients with type 1 or 2 anywhere: truth 1 and 3 positive; 1 predicted positive, 2 predicted positive (type 1),
    # 3 failed -> counted wrong (negative)
    assert metrics["patient_sensitivity"] == pytest.approx(0.5)
    assert metrics["patient_specificity"] == pytest.approx(0.0)
    assert [f["patient"] for f in metrics["failed"]] == ["3"]


def test_spacing_field_formats():
    assert _numbers("[.5859375, .5859375]") == [0.5859375, 0.5859375]
    assert _numbers("[0.3125, 0.3125]") == [0.3125, 0.3125]
    assert _numbers("0.5\\0.6") == [0.5, 0.6]
    assert _numbers("not a number") == []


def test_segmentation_score_matches_and_ignores_unlabelled_levels():
    truth = np.zeros((1, 40, 10), dtype=np.int32)
    truth[0, 5:10] = 1
    truth[0, 15:20] = 2
    predicted = np.zeros_like(truth)
    predicted[0, 5:10] = 7            # perfect match of label 1
    predicted[0, 16:21] = 8           # label 2 shifted by one row
    predicted[0, 30:35] = 9           # outside the labelled range: not penalised
    case = LumbarSegCase("c", "VB2", "vertebral_body", ("L5", "L4"))

    def to_world(index):
        index = np.atleast_2d(index).astype(float)
        return np.stack([index[:, 0], index[:, 2], -index[:, 1]], axis=1)

    result = score_instance_maps(case, truth, predicted, {7: "L5", 8: "L4", 9: "L3"}, to_world, 0.0)
    assert result.n_matched == 2 and result.n_predicted_outside_range == 1
    assert result.dice == pytest.approx(2 * 90 / 200)
    assert result.instance_dice["L5"] == 1.0
    assert result.level_correct is True
    wrong = score_instance_maps(case, truth, predicted, {7: "S1", 8: "L5"}, to_world, 0.0)
    assert wrong.level_correct is False


def test_segmentation_summary_counts_misnamed_cases_with_and_without_a_level_warning():
    def result(name: str, correct: bool | None, warnings: tuple[str, ...]) -> CaseResult:
        return CaseResult(name, "vertebral_body", 0.9, 3, 3, 0, {}, {}, correct, warnings, 1.0)

    metrics = summarise_seg([
        result("a", False, ("s1_small",)),
        result("b", False, ()),
        result("c", True, ("transitional_vertebra",)),
        result("d", True, ()),
        result("e", None, ("no_sacrum",)),
    ])
    assert metrics["n_misnamed_with_warning"] == 1
    assert metrics["n_misnamed_without_warning"] == 1
    assert metrics["n_correct_with_warning"] == 1
    assert metrics["level_accuracy"] == 0.5
    assert metrics["cases"][0]["level_warnings"] == ["s1_small"]


def test_synthetic_summary_per_type():
    outcomes = [(1, "L4 inferior", 1, 1), (1, "L5 superior", 1, 0), (1, "L5 inferior", 0, 0), (2, "S1 superior", 2, MISSED)]
    metrics = summarise(outcomes, [])
    assert metrics["per_type"]["1"] == {"n": 2, "sensitivity": 0.5, "specificity": 1.0}
    assert metrics["per_type"]["0"]["specificity"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["confusion_matrix"]["2"]["missed"] == 1
    assert FAILED == MISSED


@pytest.mark.parametrize("sacrum_in_fov", [False, True], ids=["sacrum-not-imaged", "sacrum-imaged"])
def test_a_change_planted_at_a_level_outside_the_image_is_not_scored(sacrum_in_fov: bool) -> None:
    """Without the sacrum in the field of view L5-S1 is not imaged: its planted change is listed, not scored."""
    study = generate_study(seed=1, config=SYNTH_CONFIG, modic="L5 inferior:1,L3 inferior:2",
                           variant={"sacrum_in_fov": sacrum_in_fov})
    planted = {e["name"]: e["modic_type"] for e in study.truth["endplates"]}
    assert planted["L5 inferior"] == 1 and planted["L3 inferior"] == 2  # the truth lists both either way

    truth, not_imaged = imaged_truth(study, ("L3-L4", "L4-L5", "L5-S1"))

    assert truth["L3 inferior"] == 2 and truth["L4 inferior"] == 0
    if sacrum_in_fov:
        assert truth["L5 inferior"] == 1 and truth["S1 superior"] == 0 and not_imaged == []
    else:
        assert "L5 inferior" not in truth and "S1 superior" not in truth
        assert sorted(not_imaged) == ["L5 inferior", "S1 superior"]
    assert not set(truth) & set(not_imaged)
    metrics = summarise([(1, name, t, t) for name, t in truth.items()], [],
                        [{"seed": 1, "endplate": name} for name in not_imaged])
    assert metrics["n_endplates"] == len(truth) and len(metrics["not_imaged"]) == len(not_imaged)


@pytest.mark.parametrize(
    ("modic_type", "mixed", "expected"),
    [(1, None, 1), (0, None, 0), (1, "1/2", 2), (2, "1/2", 2), (2, "2/3", 3), (1, "1/3", 1), (1, "1/2/3", 1)],
)
def test_a_modic_mixed_reading_counts_under_its_larger_type_like_the_planted_truth(
    modic_type: int, mixed: str | None, expected: int
) -> None:
    assert scored_type(modic_type, mixed) == expected
