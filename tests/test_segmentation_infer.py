"""The shipped segmentation bundle on a tiny synthetic study (SegmentationModel, CPU).

Measured with the interim bundle on seeds 3, 5 and 11 of the tiny config: vertebral-body
Dice 0.77-0.84 from T1 and 0.87-0.90 from T2, disc Dice 0.50-0.75. The thresholds below
sit well under those values: they catch a broken model or preprocessing, not small changes.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from modic.errors import AnalysisError, ConfigError
from modic.io.resample import resample_to
from modic.io.volume import Volume
from modic.segmentation.bundle import default_bundle_path, load_bundle
from modic.segmentation.classes import N_CLASSES, SegClass
from modic.segmentation.infer import SegmentationModel
from modic.segmentation.probabilities import fuse_probabilities
from modic.synth import generate_study

SEED = 11
MIN_BODY_DICE = 0.6
MIN_DISC_DICE = 0.3


@pytest.fixture(scope="module")
def setup() -> SimpleNamespace:
    bundle = load_bundle(default_bundle_path())
    model = SegmentationModel(bundle.network, settings=bundle.settings, device="cpu", batch_size=8)
    study = generate_study(seed=SEED, config="tiny")
    return SimpleNamespace(bundle=bundle, model=model, study=study, probabilities={})


def _probabilities(setup: SimpleNamespace, weighting: str) -> np.ndarray:
    if weighting not in setup.probabilities:
        setup.probabilities[weighting] = setup.model.predict_probabilities(getattr(setup.study, weighting))
    return setup.probabilities[weighting]


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return float(2.0 * np.logical_and(prediction, truth).sum() / (prediction.sum() + truth.sum()))


def test_shipped_bundle_loads() -> None:
    bundle = load_bundle()
    assert bundle.path == default_bundle_path()
    assert bundle.settings.spacing_mm > 0
    assert not bundle.network.training
    assert SegmentationModel.from_bundle().settings == bundle.settings


@pytest.mark.parametrize("weighting", ["t1", "t2"])
def test_probabilities_on_the_volume_grid(setup: SimpleNamespace, weighting: str) -> None:
    volume: Volume = getattr(setup.study, weighting)
    probabilities = _probabilities(setup, weighting)
    assert probabilities.shape == (N_CLASSES, *volume.shape)
    assert np.isfinite(probabilities).all()
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-4)


@pytest.mark.parametrize("weighting", ["t1", "t2"])
def test_segments_a_synthetic_study_from_one_contrast(setup: SimpleNamespace, weighting: str) -> None:
    """The single-channel network finds vertebral bodies and discs from T1 alone and from T2 alone.

    The synthetic labels live on the T1 grid; they are resampled (nearest) onto the T2 grid.
    """
    volume: Volume = getattr(setup.study, weighting)
    truth = resample_to(setup.study.semantic, volume, interpolation="nearest").array
    predicted = _probabilities(setup, weighting).argmax(axis=0)
    body = _dice(predicted == SegClass.VERTEBRAL_BODY, truth == SegClass.VERTEBRAL_BODY)
    disc = _dice(predicted == SegClass.DISC, truth == SegClass.DISC)
    assert body > MIN_BODY_DICE, f"{weighting} vertebral-body Dice {body:.3f}"
    assert disc > MIN_DISC_DICE, f"{weighting} disc Dice {disc:.3f}"


def test_fused_probabilities_are_the_mean(setup: SimpleNamespace) -> None:
    t1 = setup.study.t1
    t2_on_t1 = resample_to(setup.study.t2, t1, interpolation="linear")
    fused = setup.model.predict_fused([t1, t2_on_t1])
    expected = (_probabilities(setup, "t1") + setup.model.predict_probabilities(t2_on_t1)) / 2
    np.testing.assert_allclose(fused, expected, atol=1e-6)
    np.testing.assert_allclose(fused.sum(axis=0), 1.0, atol=1e-4)


def test_fusing_needs_volumes_on_one_grid(setup: SimpleNamespace) -> None:
    a = np.full((N_CLASSES, 2, 2, 2), 0.25, dtype=np.float32)
    with pytest.raises(AnalysisError, match="share a grid"):
        fuse_probabilities([a, a[:, :1]])
    with pytest.raises(AnalysisError, match="T1 or a T2"):
        setup.model.predict_fused([])


def test_non_finite_input_is_an_analysis_error(setup: SimpleNamespace) -> None:
    volume: Volume = setup.study.t1
    array = volume.array.copy()
    array[0, 0, 0] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        setup.model.predict_probabilities(volume.with_array(array))


def test_bfloat16_on_the_cpu_agrees_with_float32(setup: SimpleNamespace) -> None:
    fast = SegmentationModel(setup.bundle.network, settings=setup.bundle.settings, cpu_precision="bfloat16")
    assert fast.cpu_bfloat16
    reduced = fast.predict_probabilities(setup.study.t2)
    full = _probabilities(setup, "t2")
    assert reduced.dtype == full.dtype == np.float32
    assert np.abs(reduced - full).mean() < 0.02
    assert (reduced.argmax(axis=0) == full.argmax(axis=0)).mean() > 0.97


def test_unknown_cpu_precision_is_a_config_error(setup: SimpleNamespace) -> None:
    with pytest.raises(ConfigError, match="'int8'.*float32, bfloat16, auto"):
        SegmentationModel(setup.bundle.network, settings=setup.bundle.settings, cpu_precision="int8")
