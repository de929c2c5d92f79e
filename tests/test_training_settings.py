"""Training configs (configs/seg, configs/grade, configs/orientation) are typed settings: checked once at load, partial overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from modic.errors import ConfigError
from modic.settings.build import to_dict
from modic.training.settings import load_grade_train_settings, load_orientation_train_settings, load_train_config

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "configs" / "seg").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_segmentation_config_loads(path: Path) -> None:
    config = load_train_config(path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert config.name == raw["name"]
    assert config.settings.training.epochs == raw["training"]["epochs"]
    assert dict(config.settings.network_def) == raw["network_def"]
    assert config.settings.preprocessing.spacing_mm == raw["preprocessing"]["spacing_mm"]


def test_the_shipped_grading_config_loads() -> None:
    settings = load_grade_train_settings(REPO_ROOT / "configs" / "grade" / "train.yaml")
    assert list(settings.candidates.chosen()) == ["logistic", "gradient_boosting"]
    assert settings.patch_model is not None and settings.patch_model.rules.keep_types == (1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 1  # type: ignore[misc]


def test_overrides_change_only_their_keys() -> None:
    smoke = REPO_ROOT / "configs" / "seg" / "smoke.yaml"
    shipped = load_train_config(smoke).settings
    changed = load_train_config(smoke, overrides={"training.epochs": 7, "data.lumbar_seg": "/elsewhere"}).settings
    assert changed.training.epochs == 7 and changed.data.lumbar_seg == "/elsewhere"
    assert changed.training.batch_size == shipped.training.batch_size
    assert changed.data.source_share == shipped.data.source_share
    assert changed.fingerprint() != load_train_config(smoke, overrides={"data.lumbar_seg": "/other"}).fingerprint()
    assert changed.fingerprint() == load_train_config(smoke, overrides={"data.lumbar_seg": "/elsewhere"}).fingerprint()


@pytest.mark.parametrize(
    ("folder", "section", "change", "message"),
    [
        ("seg", "training", {"epocs": 3}, "unknown key 'training.epocs'; did you mean 'training.epochs'?"),
        ("seg", "augmentation", {"noise_prob": 1.5}, "'augmentation.noise_prob' is 1.5; expected a number between 0 and 1"),
        ("seg", "data", {"source_share": [0.5]}, "'data.source_share' is [0.5]; expected a mapping of source names"),
        ("grade", "candidates", {"logistc": {"C": 1}}, "unknown key 'candidates.logistc'; did you mean 'candidates.logistic'?"),
        ("grade", "cross_validation", {"folds": 1}, "'cross_validation.folds' is 1; expected a number of at least 2"),
    ],
)
def test_a_mistake_is_one_line_naming_file_and_key(
    tmp_path: Path, folder: str, section: str, change: dict[str, object], message: str
) -> None:
    raw = yaml.safe_load((REPO_ROOT / "configs" / folder / ("smoke.yaml" if folder == "seg" else "train.yaml")).read_text())
    raw[section].update(change)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    load = load_train_config if folder == "seg" else load_grade_train_settings
    with pytest.raises(ConfigError) as caught:
        load(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"config {path}: ") and message in text


def test_a_misspelt_override_is_refused_like_a_file_key() -> None:
    with pytest.raises(ConfigError, match=r"config \(overrides\): unknown key 'data.lumbar_sge'; did you mean 'data.lumbar_seg'\?"):
        load_train_config(REPO_ROOT / "configs" / "seg" / "smoke.yaml", overrides={"data.lumbar_sge": "x"})


ORIENTATION = REPO_ROOT / "configs" / "orientation" / "train.yaml"


def test_the_shipped_orientation_config_loads_and_round_trips() -> None:
    settings = load_orientation_train_settings(ORIENTATION)
    assert settings.view.size == 64 and settings.cross_validation.folds == 4
    assert settings.data.volume_offsets == (-5, 0, 5)
    assert settings.data.synthetic is not None and settings.data.synthetic.offsets == (-1, 0, 1)
    assert settings.threshold_candidates[0] == 0.5 and settings.training.network_def["_target_"] == "Classifier"
    # Every key of the file is a field and nothing is added: the picture cache records to_dict(settings.data).
    assert to_dict(settings) == yaml.safe_load(ORIENTATION.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("section", "change", "message"),
    [
        ("training", {"epocs": 3}, "unknown key 'training.epocs'; did you mean 'training.epochs'?"),
        ("data", {"volume_offset": [0]}, "unknown key 'data.volume_offset'; did you mean 'data.volume_offsets'?"),
        ("view", {"size": 0}, "'view.size' is 0; expected a number of at least 1"),
    ],
)
def test_an_orientation_config_mistake_is_one_line_naming_file_and_key(
    tmp_path: Path, section: str, change: dict[str, object], message: str
) -> None:
    raw = yaml.safe_load(ORIENTATION.read_text(encoding="utf-8"))
    raw[section].update(change)
    path = tmp_path / "orientation.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_orientation_train_settings(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"config {path}: ") and message in text
