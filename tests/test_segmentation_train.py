"""``modic train seg`` on the smoke config: metrics, resume, determinism and the exported bundle (CPU).

Most runs use one tiny synthetic study and no real data (``data.lumbar_seg`` points at an
empty dataset folder) or a small hand-made lumbar_seg folder; one test runs the smoke config
as shipped on ``../shared/datasets/lumbar_seg`` and skips when that is absent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers.segmentation import (
    SMOKE_CONFIG,
    max_abs_difference,
    read_metrics,
    state_dicts_equal,
    synthetic_smoke_config,
    write_lumbar_seg,
)

import modic.training.segmentation as seg_train
from modic.cli import main
from modic.errors import ConfigError, ModicError
from modic.segmentation.bundle import load_bundle
from modic.segmentation.classes import N_CLASSES
from modic.training.segmentation import load_cases, train
from modic.training.settings import load_train_config


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _epochs(metrics: list[dict[str, str]]) -> list[int]:
    return [int(row["epoch"]) for row in metrics]


def test_fingerprint_ignores_only_the_schedule_length(tmp_path: Path) -> None:
    base = synthetic_smoke_config(tmp_path)
    assert synthetic_smoke_config(tmp_path, training__epochs=50, training__validate_every=5).fingerprint() == (
        base.fingerprint()
    )
    for key, value in [("training__learning_rate", 0.01), ("seed", 8), ("augmentation__crop_size", 48),
                       ("data__synthetic__count", 2)]:
        assert synthetic_smoke_config(tmp_path, **{key: value}).fingerprint() != base.fingerprint(), key


def test_smoke_run_logs_resumes_and_exports_a_bundle(tmp_path: Path) -> None:
    """Two epochs, then a rerun with four resumes at epoch 3; a changed learning rate refuses to resume."""
    out, bundle_dir = tmp_path / "run", tmp_path / "bundle"
    config = synthetic_smoke_config(tmp_path)
    result = train(config, output_dir=out, device="cpu", export_bundle=bundle_dir)

    metrics = read_metrics(out / "metrics.csv")
    assert _epochs(metrics) == [1, 2]
    assert all(math.isfinite(float(row["train_loss"])) and float(row["train_loss"]) > 0 for row in metrics)
    assert _checkpoint(out / "last.pt")["epoch"] == 2
    assert result["bundle"] == str(bundle_dir) and result["best"] == {"epoch": 2}

    loaded = load_bundle(bundle_dir)
    assert loaded.settings == config.settings.preprocessing
    assert state_dicts_equal(loaded.network.state_dict(), _checkpoint(out / "best.pt")["model"])
    assert loaded.network(torch.zeros(1, 1, 32, 32)).shape == (1, N_CLASSES, 32, 32)
    metadata = loaded.metadata
    assert metadata["network_data_format"]["outputs"]["pred"]["num_channels"] == N_CLASSES
    assert metadata["network_data_format"]["inputs"]["image"]["num_channels"] == 1
    assert metadata["training_config_fingerprint"] == config.fingerprint()
    assert metadata["training_cases_per_source"] == {"synthetic": 2}
    assert metadata["validation_cases"] == []

    extended = synthetic_smoke_config(tmp_path, training__epochs=4, training__validate_every=2)
    train(extended, output_dir=out, device="cpu")
    resumed = read_metrics(out / "metrics.csv")
    assert _epochs(resumed) == [1, 2, 3, 4]
    assert resumed[:2] == metrics
    assert _checkpoint(out / "last.pt")["epoch"] == 4

    before = (out / "metrics.csv").read_bytes(), (out / "last.pt").read_bytes()
    changed = synthetic_smoke_config(tmp_path, training__epochs=5, training__learning_rate=0.01)
    with pytest.raises(ConfigError, match="different config"):
        train(changed, output_dir=out, device="cpu")
    assert ((out / "metrics.csv").read_bytes(), (out / "last.pt").read_bytes()) == before


def test_same_seed_gives_identical_training(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("other_seed", 8)):
        train(synthetic_smoke_config(tmp_path, seed=seed, training__epochs=1), output_dir=tmp_path / name, device="cpu")
        runs[name] = (_checkpoint(tmp_path / name / "last.pt")["model"], read_metrics(tmp_path / name / "metrics.csv"))
    assert state_dicts_equal(runs["a"][0], runs["b"][0])
    assert runs["a"][1][0]["train_loss"] == runs["b"][1][0]["train_loss"]
    assert not state_dicts_equal(runs["a"][0], runs["other_seed"][0])


def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupting after epoch 2 of 3 and rerunning gives the weights of an uninterrupted 3-epoch run."""
    config = synthetic_smoke_config(tmp_path, training__epochs=3)
    train(config, output_dir=tmp_path / "straight", device="cpu")

    append = seg_train._append_metrics

    def interrupt_at_epoch_3(path: Path, row: dict) -> None:
        if row["epoch"] == 3:
            raise KeyboardInterrupt  # as Ctrl-C during epoch 3: last.pt still holds epoch 2
        append(path, row)

    monkeypatch.setattr(seg_train, "_append_metrics", interrupt_at_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train(config, output_dir=tmp_path / "resumed", device="cpu")
    monkeypatch.setattr(seg_train, "_append_metrics", append)
    assert _checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    train(config, output_dir=tmp_path / "resumed", device="cpu")

    straight = _checkpoint(tmp_path / "straight" / "last.pt")["model"]
    resumed = _checkpoint(tmp_path / "resumed" / "last.pt")["model"]
    assert max_abs_difference(straight, resumed) < 1e-6


def test_extending_a_finished_run_trains_the_new_epochs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(synthetic_smoke_config(tmp_path, training__epochs=2), output_dir=out, device="cpu")
    after_two = _checkpoint(out / "last.pt")["model"]
    train(synthetic_smoke_config(tmp_path, training__epochs=3), output_dir=out, device="cpu")
    after_three = _checkpoint(out / "last.pt")["model"]
    assert max_abs_difference(after_two, after_three) > 0.0


def test_fine_tuning_starts_from_the_bundle_weights(tmp_path: Path) -> None:
    """``training.initial_weights``: at learning rate 0 the fine-tuned bundle keeps the start bundle's weights."""
    start = tmp_path / "start_bundle"
    train(synthetic_smoke_config(tmp_path, training__epochs=1), output_dir=tmp_path / "start", device="cpu",
          export_bundle=start)
    start_weights = load_bundle(start).network.state_dict()

    frozen = synthetic_smoke_config(tmp_path, seed=99, training__epochs=1, training__learning_rate=0.0,
                                    training__initial_weights=str(start))
    train(frozen, output_dir=tmp_path / "frozen", device="cpu", export_bundle=tmp_path / "frozen_bundle")
    kept = load_bundle(tmp_path / "frozen_bundle")
    assert state_dicts_equal(kept.network.state_dict(), start_weights)
    assert kept.metadata["fine_tuned_from"] == str(start)

    fresh = synthetic_smoke_config(tmp_path, seed=99, training__epochs=1, training__learning_rate=0.0)
    train(fresh, output_dir=tmp_path / "fresh", device="cpu", export_bundle=tmp_path / "fresh_bundle")
    assert not state_dicts_equal(load_bundle(tmp_path / "fresh_bundle").network.state_dict(), start_weights)
    assert load_bundle(tmp_path / "fresh_bundle").metadata["fine_tuned_from"] is None

    tuned = synthetic_smoke_config(tmp_path, seed=99, training__epochs=1, training__initial_weights=str(start))
    train(tuned, output_dir=tmp_path / "tuned", device="cpu")
    assert max_abs_difference(_checkpoint(tmp_path / "tuned" / "last.pt")["model"], start_weights) > 0.0


def test_fine_tuning_refuses_weights_of_another_network(tmp_path: Path) -> None:
    start = tmp_path / "start_bundle"
    train(synthetic_smoke_config(tmp_path, training__epochs=1), output_dir=tmp_path / "start", device="cpu",
          export_bundle=start)
    # network_def is a table: an override replaces it whole, as lists and tables of every settings file are
    network_def = {**load_train_config(SMOKE_CONFIG).settings.network_def, "channels": [8, 16, 32]}
    wider = synthetic_smoke_config(tmp_path, training__epochs=1, training__initial_weights=str(start),
                                   network_def=network_def)
    with pytest.raises(ConfigError, match="does not fit network_def"):
        train(wider, output_dir=tmp_path / "wider", device="cpu")
    coarser = synthetic_smoke_config(tmp_path, training__epochs=1, training__initial_weights=str(start),
                                     preprocessing__spacing_mm=1.0)
    with pytest.raises(ConfigError, match="preprocessing"):
        train(coarser, output_dir=tmp_path / "coarser", device="cpu")


def test_partially_labelled_cases_with_validation(tmp_path: Path) -> None:
    """Real-layout cases (hand-made): validation Dice is logged every ``validate_every`` epochs and picks best.pt."""
    root = write_lumbar_seg(tmp_path / "lumbar_seg")
    config = load_train_config(SMOKE_CONFIG, overrides={
        "data.lumbar_seg": str(root),
        "data.validation_cases": ["vb1_fake", "ivd_fake"],
        "training.epochs": 3,
        "training.validate_every": 2,
    })
    train_cases, val_cases = load_cases(config)
    assert [c.name for c in train_cases] == ["vb3_fake"]
    assert [c.name for c in val_cases] == ["vb1_fake", "ivd_fake"]

    result = train(config, output_dir=tmp_path / "run", device="cpu", export_bundle=tmp_path / "bundle")
    metrics = read_metrics(tmp_path / "run" / "metrics.csv")
    assert _epochs(metrics) == [1, 2, 3]
    assert metrics[0]["val_score"] == ""  # epoch 1 is not a validation epoch; 2 is, and so is the last one
    for row in metrics[1:]:
        for key in ("val_dice_vertebral_body", "val_dice_disc", "val_score"):
            assert 0.0 <= float(row[key]) <= 1.0, (key, row)
    best = result["best"]
    assert best["epoch"] in (2, 3)
    assert best["val_score"] == max(float(row["val_score"]) for row in metrics[1:])
    assert load_bundle(tmp_path / "bundle").metadata["validation_metrics"] == best

    unknown = load_train_config(SMOKE_CONFIG, overrides={"data.lumbar_seg": str(root), "data.validation_cases": ["x9"]})
    with pytest.raises(ConfigError, match="x9"):
        load_cases(unknown)


def test_cli_trains_on_a_lumbar_seg_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``modic train seg --lumbar-seg DIR --epochs N --export`` as a user runs it."""
    root = write_lumbar_seg(tmp_path / "lumbar_seg")
    argv = ["train", "seg", "--config", str(SMOKE_CONFIG), "--lumbar-seg", str(root), "--epochs", "1",
            "--output", str(tmp_path / "run"), "--export", str(tmp_path / "bundle"), "--device", "cpu"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bundle"] == str(tmp_path / "bundle")
    assert _epochs(read_metrics(tmp_path / "run" / "metrics.csv")) == [1]
    # max_training_cases: 2 takes the first two cases of cases.csv
    assert load_bundle(tmp_path / "bundle").metadata["training_cases_per_source"] == {"VB1": 1, "VB3": 1}

    assert main([*argv[:5], str(tmp_path / "missing"), *argv[6:]]) == 1
    assert "training data folder" in capsys.readouterr().err


def test_null_dataset_folder_is_not_an_internal_error(tmp_path: Path) -> None:
    config = synthetic_smoke_config(tmp_path, data__lumbar_seg=None)
    try:
        train_cases, _ = load_cases(config)
    except ModicError:
        return
    assert {case.source for case in train_cases} == {"synthetic"}


@pytest.mark.shared_data
def test_smoke_config_on_real_data(tmp_path: Path, shared_datasets: Path) -> None:
    """The smoke config as shipped (two real cases), its relative data path replaced by the fixture's."""
    config = load_train_config(SMOKE_CONFIG, overrides={"data.lumbar_seg": str(shared_datasets / "lumbar_seg")})
    train(config, output_dir=tmp_path / "run", device="cpu", export_bundle=tmp_path / "bundle")
    metrics = read_metrics(tmp_path / "run" / "metrics.csv")
    assert _epochs(metrics) == [1, 2]
    assert all(math.isfinite(float(row["train_loss"])) for row in metrics)
    metadata = load_bundle(tmp_path / "bundle").metadata
    assert sum(metadata["training_cases_per_source"].values()) == 2
    assert "network_data_format" in metadata
