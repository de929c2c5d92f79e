"""The learned orientation check: images upside down are refused with one line, upright ones are not.

Synthetic studies of seeds the network was not trained on (training used
700000-700023), and held-out SPIDER patients (odd positions of the sorted
IDs, :func:`modic.training.orientation_data.split_half`) when the real datasets are
present. The bundle's loading errors are one line.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from modic.cli import main
from modic.errors import ConfigError, InputError, ModelError
from modic.evaluation.spider import load_patient_images, read_spacings
from modic.io.formats import write_nifti
from modic.io.study import StudyImages
from modic.io.volume import Volume
from modic.orientation.model import OrientationModel, load_orientation_model
from modic.pipeline import Models, check_upright
from modic.resources import models_dir
from modic.settings import load_settings
from modic.synth import generate_study, to_study_images
from modic.training.orientation_data import split_half, spider_patients

CONFIG = load_settings()
SETTINGS = CONFIG.input_checks.orientation


@pytest.fixture(scope="module")
def model() -> OrientationModel:
    return load_orientation_model(SETTINGS.bundle)


def head_to_foot(volume: Volume | None) -> Volume | None:
    """``volume`` with its pixels reversed along the array axis closest to head-foot, geometry unchanged."""
    if volume is None:
        return None
    axis = int(np.argmax(np.abs(volume.affine[2, :3])))
    return volume.with_array(np.ascontiguousarray(np.flip(volume.array, axis=axis)))


def upside_down(images: StudyImages) -> StudyImages:
    return replace(images, t1=head_to_foot(images.t1), t2=head_to_foot(images.t2),
                   t2_native=head_to_foot(images.t2_native))


@pytest.mark.parametrize(("seed", "config"), [(11, "tiny"), (12, "tiny"), (13, "tiny")])
def test_synthetic_study_upright_passes_and_flipped_is_refused(model: OrientationModel, seed: int, config: str) -> None:
    images = to_study_images(generate_study(seed=seed, config=config))
    threshold = SETTINGS.upside_down_threshold
    for volume in (images.t1, images.t2_native):
        assert volume is not None
        assert model.upside_down_probability(volume) < 1.0 - threshold
        assert model.upside_down_probability(head_to_foot(volume)) >= threshold

    check_upright(images, model=model, settings=SETTINGS)
    with pytest.raises(InputError, match="T1 image .* looks flipped head to foot"):
        check_upright(upside_down(images), model=model, settings=SETTINGS)


def test_t1_only_study_flipped_is_refused_by_modic_analyze_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A T1 alone, where the former S1 test had no second image and the canal contrast no T2."""
    study = generate_study(seed=14, config="tiny")
    write_nifti(head_to_foot(study.t1), tmp_path / "t1.nii.gz")
    out = tmp_path / "out"

    code = main(["-q", "analyze", "--t1", str(tmp_path / "t1.nii.gz"), "-o", str(out), "--device", "cpu"])

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("modic: error")]
    assert code == 1 and not out.exists()
    assert len(errors) == 1
    assert "'t1.nii.gz' looks flipped head to foot" in errors[0] and "fix the orientation" in errors[0]


def test_a_picture_and_its_flipped_copy_score_p_and_one_minus_p(model: OrientationModel) -> None:
    """The score averages the picture, its mirror and both flipped copies; a blank picture is undecided."""
    volume = generate_study(seed=15, config="tiny").t2
    assert model.upside_down_probability(head_to_foot(volume)) == pytest.approx(
        1.0 - model.upside_down_probability(volume), abs=1e-5
    )
    blank = volume.with_array(np.zeros(volume.shape, dtype=np.float32))
    assert model.upside_down_probability(blank) == pytest.approx(0.5, abs=1e-6)


def test_null_bundle_turns_the_check_off() -> None:
    config = load_settings({"input_checks": {"orientation": {"bundle": None}}})
    assert Models.load(config, device="cpu").orientation is None


def test_orientation_settings_are_checked_at_load(tmp_path: Path) -> None:
    """The input checks travel in the loaded settings; a wrong threshold is a one-line ConfigError."""
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump({"input_checks": {"orientation": {"upside_down_threshold": 0.3}}}))
    with pytest.raises(ConfigError, match="input_checks.orientation.upside_down_threshold"):
        load_settings(path)


def _damaged_copy(tmp_path: Path, damage: str) -> Path:
    bundle = Path(shutil.copytree(models_dir() / SETTINGS.bundle, tmp_path / "orientation"))
    if damage == "weights":
        weights = bundle / "models" / "model.pt"
        weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    elif damage == "metadata":
        (bundle / "configs" / "metadata.json").write_text("{not json")
    elif damage == "view_size":
        inference = json.loads((bundle / "configs" / "inference.json").read_text())
        inference["modic"]["view_size"] = "big"
        (bundle / "configs" / "inference.json").write_text(json.dumps(inference))
    return bundle


@pytest.mark.parametrize(
    ("damage", "mentions"),
    [("weights", "corrupt (checksum mismatch)"), ("metadata", "not JSON"), ("view_size", "view_size 'big'")],
)
def test_damaged_bundle_is_one_line(tmp_path: Path, damage: str, mentions: str) -> None:
    with pytest.raises(ModelError) as caught:
        load_orientation_model(_damaged_copy(tmp_path, damage))
    message = str(caught.value)
    assert "\n" not in message and mentions in message
    assert "orientation.bundle in configs/input_checks.yaml" in message and "--model" not in message


def test_missing_bundle_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="orientation bundle 'no_such_bundle' is neither a folder nor a bundle"):
        load_orientation_model("no_such_bundle")


# --- real SPIDER pictures of held-out patients ------------------------------------------------------------------


HELD_OUT = ("30", "101")
"""Held-out patients: 30's T2 alone was refused as upside down by the former S1 test."""


@pytest.fixture(scope="module")
def spider(shared_datasets: Path) -> Path:
    root = shared_datasets / "spider_midsag"
    held_out = split_half(spider_patients(root))[1]
    assert set(HELD_OUT) | {"52"} <= set(held_out)
    return root


@pytest.mark.parametrize("patient", HELD_OUT)
def test_held_out_spider_pair_as_stored_passes(spider: Path, model: OrientationModel, patient: str) -> None:
    images = load_patient_images(spider, patient, read_spacings(spider))
    check_upright(images, model=model, settings=SETTINGS)
    for role in ("t1", "t2"):
        alone = replace(images, t1=images.t1 if role == "t1" else None,
                        t2_native=images.t2_native if role == "t2" else None, t2=None)
        check_upright(alone, model=model, settings=SETTINGS)


def test_held_out_spider_pair_flipped_is_refused(spider: Path, model: OrientationModel) -> None:
    """Patient 101 flipped head to foot. (Flipped 30 scores about 0.62, below the threshold: one of the
    held-out misses counted in the model card.)"""
    images = load_patient_images(spider, "101", read_spacings(spider))
    with pytest.raises(InputError, match=r"'101_t1.png' looks flipped head to foot"):
        check_upright(upside_down(images), model=model, settings=SETTINGS)


def test_spider_t1_stored_head_to_foot_is_refused(spider: Path, model: OrientationModel) -> None:
    """Patient 52's T1 is stored upside down in the dataset itself (its T2 is upright)."""
    images = load_patient_images(spider, "52", read_spacings(spider))
    with pytest.raises(InputError, match="'52_t1.png' looks flipped head to foot"):
        check_upright(images, model=model, settings=SETTINGS)
    check_upright(replace(images, t1=None), model=model, settings=SETTINGS)


def test_held_out_t2_alone_is_analysed(spider: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``modic analyze-slice`` of patient 30's T2 alone: refused by the former S1 test, now analysed."""
    spacing = read_spacings(spider)[("30", "t2")]
    out = tmp_path / "out"

    code = main(["-q", "analyze-slice", "--t2", str(spider / "images" / "30_t2.png"), "--spacing",
                 str(spacing[0]), str(spacing[1]), "-o", str(out), "--device", "cpu"])

    assert code == 0, capsys.readouterr().err
    assert (out / "report.json").is_file()
