"""Presence models: noisy-OR fitting, bundle files, gating of the classifier's types, whole-body changes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from modic.classification.grading import Presence, gate_by_presence
from modic.classification.presence import (
    PresenceModel,
    PresenceModels,
    feature_names,
    fit_presence,
    level_probabilities,
    noisy_or,
    presence_vector,
)
from modic.classification.whole_body import whole_body_flags
from modic.errors import ConfigError, ModelError
from modic.results import Decision, EndplateGrade, LevelGrade
from modic.settings import shipped_settings
from modic.training.presence import LevelSample, best_threshold, cross_validate, reliability, write_presence_bundle
from modic.training.settings import load_presence_train_settings
from tests.helpers.features import band

VOXELS = shipped_settings().classification.voxels
WHOLE_BODY = shipped_settings().classification.whole_body


def test_noisy_or_fit_learns_the_informative_feature_and_is_calibrated():
    rng = np.random.default_rng(0)
    bags, labels = [], []
    for _ in range(300):
        rows = rng.normal(size=(2, 3))
        # the level is changed when either endplate's first feature is high
        p = noisy_or([1 / (1 + np.exp(-(3 * r[0] - 2))) for r in rows])
        labels.append(int(rng.random() < p))
        bags.append(rows)
    # the t2 variant has 13 features: pad with uninformative zeros
    rows8 = [np.hstack([b, np.zeros((2, 10))]) for b in bags]
    model = fit_presence(rows8, labels, variant="t2", l2=0.1)
    assert model.weights[0] > 1.0 and np.all(np.abs(model.weights[1:3]) < 0.5)
    probabilities = level_probabilities(model, rows8)
    observed = np.asarray(labels)
    # calibrated: mean probability matches the positive rate, and it beats the constant predictor's Brier score
    assert abs(probabilities.mean() - observed.mean()) < 0.05
    assert np.mean((probabilities - observed) ** 2) < np.mean((observed.mean() - observed) ** 2) - 0.05


def test_bundle_round_trip_and_refusals(tmp_path: Path):
    model = PresenceModel("t2", np.zeros(13), np.ones(13), np.arange(13) / 10, -0.3, threshold=0.4)
    write_presence_bundle(tmp_path / "b", {"t2": model}, types=None, version="9.9", metadata={"name": "test"})
    loaded = PresenceModels.load(tmp_path / "b")
    assert loaded.info["version"] == "9.9" and loaded.info["thresholds"] == {"t2": 0.4}
    vector = presence_vector(band(t1=None, t2=1.3), "t2")
    assert vector.shape == (len(feature_names("t2")),)
    assert loaded.variants["t2"].endplate_probability(vector) == pytest.approx(model.endplate_probability(vector))
    assert loaded.for_features(band(t1=1.0, t2=1.0)) is None  # no t1t2 variant in this bundle

    data = json.loads((tmp_path / "b" / "configs" / "presence.json").read_text())
    data["variants"]["t2"]["features"] = ["something_else"]
    (tmp_path / "b" / "configs" / "presence.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="retrain it with `modic train presence`"):
        PresenceModels.load(tmp_path / "b")
    with pytest.raises(ModelError, match="not found"):
        PresenceModels.load(tmp_path / "missing")


def test_unchanged_level_is_type_0_unless_a_strong_specific_pattern():
    weak_type3 = band("L4 inferior", fractions={1: 0.0, 2: 0.0, 3: 0.3})
    strong_type1 = band("L5 superior", fractions={1: 0.7, 2: 0.0, 3: 0.0})
    decisions = [Decision(3, None, 0.6, {}), Decision(1, None, 0.8, {})]
    unchanged = Presence((0.1, 0.1), 0.19, 0.5)
    gated = gate_by_presence(
        decisions, [weak_type3, strong_type1], unchanged, strong_fraction=0.5, strong_type1_fraction=0.1
    )
    assert [d.modic_type for d in gated] == [0, 1]
    assert "under 0.50" in gated[0].note and gated[0].confidence == pytest.approx(0.81)


@pytest.mark.parametrize(("fraction", "t2", "expected"), [(0.2, 1.0, 1), (0.05, 1.0, 0), (0.2, None, 0)],
                         ids=["focus-on-t1-and-t2", "under-the-type1-bar", "t1-alone"])
def test_type1_focus_read_on_both_sequences_stands_against_an_unchanged_level(
    fraction: float, t2: float | None, expected: int
) -> None:
    """T1 low with T2 high is specific: its focus stands from ``strong_type1_fraction``; low T1 alone needs the strong bar."""
    focus = band("L5 superior", fractions={1: fraction, 2: 0.0, 3: 0.0}, t2=t2)
    plain = band("L4 inferior")
    gated = gate_by_presence(
        [Decision(0, None, 0.9, {}), Decision(1, None, 0.6, {})], [plain, focus], Presence((0.2, 0.3), 0.44, 0.65),
        strong_fraction=0.5, strong_type1_fraction=0.1,
    )
    assert [d.modic_type for d in gated] == [0, expected]
    if expected == 0:
        assert "under 0.65: no change" in gated[1].note


def test_changed_level_keeps_the_classifier_types_and_types_the_likelier_endplate():
    weak_type1 = band("L4 inferior", fractions={1: 0.2, 2: 0.0, 3: 0.0})
    plain = band("L5 superior")
    gated = gate_by_presence(
        [Decision(1, None, 0.6, {}), Decision(0, None, 0.9, {})], [weak_type1, plain],
        Presence((0.7, 0.2), 0.76, 0.5), strong_fraction=0.5, strong_type1_fraction=0.1,
    )
    assert [d.modic_type for d in gated] == [1, 0]
    weak_type3 = band("L4 inferior", fractions={1: 0.0, 2: 0.0, 3: 0.2})
    strong_type3 = band("L5 superior", fractions={1: 0.0, 2: 0.0, 3: 0.6})
    gated = gate_by_presence(
        [Decision(3, None, 0.6, {}), Decision(3, None, 0.7, {})], [weak_type3, strong_type3],
        Presence((0.7, 0.6), 0.88, 0.5), strong_fraction=0.5, strong_type1_fraction=0.1,
    )
    assert [d.modic_type for d in gated] == [2, 3]
    assert "type 3 pattern covers 0.20" in gated[0].note
    nothing = gate_by_presence(
        [Decision(0, None, 0.9, {}), Decision(0, None, 0.9, {})], [plain, plain], Presence((0.2, 0.6), 0.68, 0.5),
        strong_fraction=0.5, strong_type1_fraction=0.1,
    )
    assert [d.modic_type for d in nothing] == [0, 2]
    assert "prevalent type" in nothing[1].note and nothing[1].confidence == pytest.approx(0.68)
    t1_only = band("L5 superior", t2=None)
    untyped = gate_by_presence(
        [Decision(0, None, 0.9, {}), Decision(0, None, 0.9, {})], [t1_only, t1_only], Presence((0.2, 0.6), 0.68, 0.5),
        strong_fraction=0.5, strong_type1_fraction=0.1,
    )
    assert [d.modic_type for d in untyped] == [0, 0]  # one sequence: no type from the prior alone


def test_best_threshold_and_reliability_table():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    assert best_threshold(labels, probabilities) == pytest.approx(0.4)
    # a cut within the tolerance of the best balanced accuracy, and higher: the more specific one
    flat_labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    flat = np.array([0.1, 0.2, 0.3, 0.5, 0.4, 0.45, 0.6, 0.7, 0.8, 0.9])
    assert best_threshold(flat_labels, flat) == pytest.approx(0.4)  # BA 0.875
    # one standard error at the best cut (sensitivity 1, specificity 0.75 of 4): 0.5 * sqrt(0.1875 / 4) = 0.108
    assert best_threshold(flat_labels, flat, one_standard_error=True) == pytest.approx(0.6)  # BA 0.833, specificity 1
    # a specificity floor raises the cut to the lowest one calling enough normal levels normal
    assert best_threshold(flat_labels, flat, min_specificity=1.0) == pytest.approx(0.6)
    assert best_threshold(flat_labels, flat, min_specificity=0.5) == pytest.approx(0.4)  # already specific enough
    table = reliability(probabilities, labels, bins=2)
    assert [row["n"] for row in table] == [4, 2]
    assert table[0]["observed_frequency"] == pytest.approx(0.25)


def level(name: str, vertebrae: tuple[str, str], *, t1_references: tuple[float, float], t2: bool = True) -> LevelGrade:
    grades = []
    for vertebra, side, t1_reference in zip(vertebrae, ("inferior", "superior"), t1_references):
        features = band(f"{vertebra} {side}", t1=1.0, t2=1.0 if t2 else None, t1_reference=t1_reference)
        grades.append(EndplateGrade(
            endplate=f"{vertebra} {side}", level=name, modic_type=0, mixed=None, confidence=0.9, scores={},
            method="rules", region_fraction=0.0, height_fraction=0.0, features=features,
        ))
    return LevelGrade(level=name, modic_type=0, mixed=None, confidence=0.9, endplates=tuple(grades))


def test_a_body_brighter_on_t1_than_the_others_is_flagged_as_a_whole_body_change():
    uniform = [level("L3-L4", ("L3", "L4"), t1_references=(100, 100)),
               level("L4-L5", ("L4", "L5"), t1_references=(100, 104)),
               level("L5-S1", ("L5", "S1"), t1_references=(104, 98))]
    assert whole_body_flags(uniform, voxels=VOXELS, whole_body=WHOLE_BODY) == []
    shaded_l4 = [level("L3-L4", ("L3", "L4"), t1_references=(100, 122)),
                 level("L4-L5", ("L4", "L5"), t1_references=(122, 104)),
                 level("L5-S1", ("L5", "S1"), t1_references=(104, 98))]
    assert whole_body_flags(shaded_l4, voxels=VOXELS, whole_body=WHOLE_BODY) == []
    fatty_l4 = [level("L3-L4", ("L3", "L4"), t1_references=(100, 150)),
                level("L4-L5", ("L4", "L5"), t1_references=(150, 104)),
                level("L5-S1", ("L5", "S1"), t1_references=(104, 98))]
    flags = whole_body_flags(fatty_l4, voxels=VOXELS, whole_body=WHOLE_BODY)
    assert [f.code for f in flags] == ["whole_body_change"]
    assert flags[0].message.startswith("L4: ") and "type 2" in flags[0].message
    assert "L4 superior and L4 inferior graded 0" in flags[0].message
    typed = [replace(lv, endplates=tuple(replace(g, modic_type=2) if g.endplate.startswith("L4") else g
                                         for g in lv.endplates)) for lv in fatty_l4]
    assert whole_body_flags(typed, voxels=VOXELS, whole_body=WHOLE_BODY) == []  # already graded changed


def test_presence_training_settings_load_and_refuse_a_misspelt_key(tmp_path: Path):
    path = Path(__file__).resolve().parents[1] / "configs" / "presence" / "train.yaml"
    shipped = load_presence_train_settings(path)
    assert shipped.cross_validation.folds == 5 and shipped.l2 == (1.0, 10.0)
    assert shipped.t2_sources == ("t2space", "t2space+midsag")
    text = path.read_text().replace("t2_sources:", "t2_sourcse:")
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match="t2_sourcse.*did you mean 't2_sources'"):
        load_presence_train_settings(tmp_path / "bad.yaml")


def test_cross_validation_keeps_held_out_patients_out_of_the_extra_training_source(monkeypatch: pytest.MonkeyPatch):
    """A patient in two sources (a 3D T2 volume and its mid-sagittal T2) never trains the fold that tests them."""
    import modic.training.presence as training

    rng = np.random.default_rng(5)

    def sample(patient: str, source: str, changed: int) -> LevelSample:
        ratio = 1.0 + 0.3 * changed + 0.05 * rng.normal()
        features = (band("L4 inferior", t1=None, t2=ratio), band("L5 superior", t1=None, t2=1.0))
        return LevelSample(patient, source, "L4-L5", changed, 2 * changed, features, ())

    evaluated = [sample(str(p), "t2space", p % 2) for p in range(10)]
    extra = [sample(str(p), "midsag_t2", p % 2) for p in range(20)]  # patients 0-9 are in both sources
    trained_on: list[set[tuple[str, str]]] = []
    real_fit = training.fit_variant

    def recording_fit(train, **kwargs):
        trained_on.append({(s.patient, s.source) for s in train})
        return real_fit(train, **kwargs)

    monkeypatch.setattr(training, "fit_variant", recording_fit)
    (probabilities, _, _), = cross_validate(evaluated, variant="t2", l2=1.0, folds=5, repeats=1, seed=0,
                                            extra_training=extra)
    assert len(trained_on) == 5 and np.isfinite(probabilities).all()
    for training_set in trained_on:
        patients = {p for p, _ in training_set}
        held_out = {str(p) for p in range(10)} - {p for p, src in training_set if src == "t2space"}
        assert len(held_out) == 2 and not held_out & patients  # neither source of a held-out patient
        assert {str(p) for p in range(10, 20)} <= patients  # extra-only patients train every fold


def test_train_presence_on_spider_reads_the_disc_and_cross_validates(shared_datasets: Path, tmp_path: Path):
    """``modic train presence`` on the real SPIDER sets: a loadable bundle whose models read the disc, with sane CV."""
    from modic.training.presence import train_presence

    config = tmp_path / "train.yaml"
    text = (Path(__file__).resolve().parent.parent / "configs" / "presence" / "train.yaml").read_text(encoding="utf-8")
    text = text.replace("../shared/datasets", str(shared_datasets))
    config.write_text(text.replace("repeats: 3", "repeats: 1"), encoding="utf-8")
    report = train_presence(config, output=tmp_path / "bundle", device="cpu")
    models = PresenceModels.load(tmp_path / "bundle")
    assert set(models.variants) == {"t1t2", "t1", "t2"} and models.types is not None
    assert "disc_t2_ratio_median" in feature_names("t1t2")
    for variant in models.variants.values():
        disc = [i for i, name in enumerate(feature_names(variant.variant)) if name.startswith("disc_")]
        assert np.abs(variant.weights[disc]).sum() > 0.2  # the disc carries weight in every variant
    cv = {name: entry["cross_validation"] for name, entry in report["variants"].items()}
    assert cv["t1t2"]["auc"] > 0.75 and cv["t1t2"]["specificity"] >= 0.78
    assert cv["t2"]["balanced_accuracy"] > 0.70 and cv["t2"]["n_levels"] == 78
