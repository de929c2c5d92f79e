"""Disc degeneration measures (height, signal) and how the presence model reads them."""

from __future__ import annotations

import numpy as np
import pytest

from modic.classification.disc import disc_features, measure_discs
from modic.classification.presence import PresenceModel, feature_names, fit_presence, presence_vector
from modic.synth import generate_study, to_study_images
from tests.helpers.anatomy import anatomy_of
from tests.helpers.features import band

NORMAL = {"lumbar_count": 5, "transitional_s1": False, "sacrum_in_fov": True}


@pytest.fixture(scope="module")
def study():
    return generate_study(seed=11, config="tiny", modic=[], variant=NORMAL)


@pytest.fixture(scope="module")
def images(study):
    """T1 and T2 on the T1 grid, as the pipeline grades them."""
    return to_study_images(study)


def test_a_thinned_disc_measures_lower_than_its_neighbours(study, images):
    semantic = study.semantic.array.astype(int)
    anatomy = anatomy_of(study, semantic)
    measures = measure_discs(anatomy, t1=images.t1.array, t2=images.t2.array)
    assert {"L3-L4", "L4-L5", "L5-S1"} <= set(measures)
    for measure in measures.values():
        assert 0.05 < measure.height_ratio < 0.6  # lumbar discs: 8-14 mm high, 35-50 mm long
    # thin L4-L5: give the half of its voxels below its mid-plane to the body below
    disc = anatomy.disc_map == next(d.label for d in anatomy.discs if d.name == "L4-L5")
    rows = np.argwhere(disc)
    points = anatomy.geometry.world_coordinates(rows)
    points -= points.mean(axis=0)
    height = points @ np.linalg.svd(points, full_matrices=False)[2][-1]  # the disc's thinnest direction
    lower = rows[height < np.median(height)]
    thinned = semantic.copy()
    thinned[tuple(lower.T)] = 1
    after = measure_discs(anatomy_of(study, thinned), t1=images.t1.array, t2=images.t2.array)
    assert after["L4-L5"].height_ratio < 0.7 * measures["L4-L5"].height_ratio
    assert after["L3-L4"].height_ratio == pytest.approx(measures["L3-L4"].height_ratio, rel=0.05)
    features = disc_features("L4-L5", after, reference_medians={"t1": 1.0, "t2": 1.0})
    tallest = max(m.height_ratio for m in after.values())
    assert features.patient_height_ratio == pytest.approx(after["L4-L5"].height_ratio / tallest)
    assert features.patient_height_ratio < 0.75


def test_a_dark_nucleus_reads_as_low_disc_signal(study, images):
    anatomy = anatomy_of(study, study.semantic.array.astype(int))
    disc = anatomy.disc_map == next(d.label for d in anatomy.discs if d.name == "L5-S1")
    t2 = images.t2.array.astype(float)
    darkened = t2.copy()
    darkened[disc] *= 0.5
    before = disc_features("L5-S1", measure_discs(anatomy, t1=None, t2=t2), reference_medians={"t2": 200.0})
    after = disc_features("L5-S1", measure_discs(anatomy, t1=None, t2=darkened), reference_medians={"t2": 200.0})
    assert after.t1 is None and before.t2 is not None and after.t2 is not None
    assert after.t2.ratio_median == pytest.approx(0.5 * before.t2.ratio_median)
    assert after.t2.ratio_p90 == pytest.approx(0.5 * before.t2.ratio_p90)
    assert after.t2.patient_ratio_p90 < before.t2.patient_ratio_p90
    assert disc_features("L5-S1", {}, reference_medians={"t2": 200.0}) is None
    assert disc_features(None, measure_discs(anatomy, t1=None, t2=t2), reference_medians={}) is None


def test_an_unsegmented_disc_adds_no_evidence_but_a_missing_band_signal_does_not_pass():
    names = feature_names("t2")
    assert names[-5:] == ("disc_height_ratio", "disc_patient_height_ratio", "disc_t2_ratio_median",
                          "disc_t2_ratio_p90", "disc_t2_patient_ratio_p90")
    n = len(names)
    mean = np.linspace(0.5, 1.5, n)
    model = PresenceModel("t2", mean, np.ones(n), np.ones(n), -1.0, threshold=0.5)
    vector = presence_vector(band(t1=None, t2=1.3), "t2")
    assert np.isnan(vector[-5:]).all() and np.isfinite(vector[:-5]).all()
    at_mean = np.concatenate([vector[:-5], mean[-5:]])
    assert model.endplate_probability(vector) == pytest.approx(model.endplate_probability(at_mean))
    vector[0] = np.nan
    assert np.isnan(model.endplate_probability(vector))


def test_fit_uses_the_disc_when_it_is_informative_and_tolerates_missing_discs():
    rng = np.random.default_rng(3)
    n = len(feature_names("t2"))
    bags, labels = [], []
    for i in range(300):
        disc = rng.normal()
        rows = np.hstack([rng.normal(size=(2, n - 5)), np.tile([disc, 0, 0, 0, 0], (2, 1))])
        if i % 10 == 0:
            rows[:, -5:] = np.nan  # the disc was not segmented
        labels.append(int(rng.random() < 1 / (1 + np.exp(-3 * disc))))
        bags.append(rows)
    model = fit_presence(bags, labels, variant="t2", l2=0.1)
    assert np.all(np.isfinite(model.mean)) and np.all(np.isfinite(model.weights))
    disc_weight = model.weights[n - 5]
    assert disc_weight > 1.0 and np.all(np.abs(model.weights[: n - 5]) < 0.5 * disc_weight)
