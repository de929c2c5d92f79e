"""The spider_t2space layout: the body/arch rule, training labels, and ``modic evaluate seg`` on it."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers.segmentation import SPIDER_AFFINE, fake_spider_arrays, synthetic_smoke_config, write_spider_t2space

from modic.errors import InputError
from modic.io.volume import Volume
from modic.evaluation.segmentation_spider import PatientResult, labelled_discs, summarise
from modic.segmentation.classes import SegClass
from modic.training.segmentation_data import load_spider_t2space
from modic.datasets.spider_t2space import (
    canal_front_by_row,
    is_spider_t2space_layout,
    read_patients,
    semantic_labels,
    vertebral_body_mask,
)
from modic.settings import load_settings
from modic.training.segmentation import load_cases, train


def test_body_is_the_vertebra_anterior_to_the_canal_in_every_slice() -> None:
    _, mask = fake_spider_arrays()
    body = vertebral_body_mask(mask, SPIDER_AFFINE)
    vertebra = mask == 1
    assert body[:, 8:31].sum() == vertebra[:, 8:31].sum()  # the whole body, lateral slices included
    assert not body[:, 31:].any()  # pedicles (lateral slices, no canal there) and arches excluded
    assert body.sum() == vertebra[:, :31].sum()


def test_body_rule_does_not_depend_on_axis_order_or_direction() -> None:
    _, mask = fake_spider_arrays()
    body = vertebral_body_mask(mask, SPIDER_AFFINE)
    # The same anatomy stored anterior-to-posterior reversed, with an affine that says so.
    flipped_affine = SPIDER_AFFINE @ np.array([[1, 0, 0, 0], [0, -1, 0, 47], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    flipped = vertebral_body_mask(mask[:, ::-1], flipped_affine)
    np.testing.assert_array_equal(flipped, body[:, ::-1])
    # Axes transposed to (superior-inferior, sagittal, anterior-posterior).
    permuted_affine = SPIDER_AFFINE[:, [2, 0, 1, 3]]
    permuted = vertebral_body_mask(np.transpose(mask, (2, 0, 1)), permuted_affine)
    np.testing.assert_array_equal(permuted, np.transpose(body, (2, 0, 1)))


def test_canal_border_is_interpolated_over_rows_without_canal() -> None:
    canal = np.zeros((3, 20, 10), dtype=bool)
    canal[1, 10:14, 2] = True
    canal[1, 14:18, 6] = True
    border = canal_front_by_row(canal)
    np.testing.assert_allclose(border, [10, 10, 10, 11, 12, 13, 14, 14, 14, 14])


def test_a_mask_without_canal_is_refused() -> None:
    _, mask = fake_spider_arrays()
    mask[mask == 3] = 0
    with pytest.raises(InputError, match="no spinal canal"):
        vertebral_body_mask(mask, SPIDER_AFFINE)


def test_training_labels_keep_the_sacrum_unlabelled() -> None:
    _, mask = fake_spider_arrays()
    semantic, labelled = semantic_labels(mask, SPIDER_AFFINE)
    assert labelled.tolist() == [True, True, True, False]  # background, body, disc; S1 unlabelled
    assert set(np.unique(semantic[mask == 3]).tolist()) == {SegClass.BACKGROUND}
    assert (semantic == SegClass.DISC).sum() == (mask == 2).sum()


def test_layout_is_recognised_from_cases_csv(tmp_path: Path) -> None:
    root = write_spider_t2space(tmp_path / "spider")
    assert is_spider_t2space_layout(root)
    assert read_patients(root) == ["1", "2"]
    (tmp_path / "lumbar").mkdir()
    (tmp_path / "lumbar" / "labels").mkdir()
    (tmp_path / "lumbar" / "cases.csv").write_text("case,source_set,structure\n", encoding="utf-8")
    assert not is_spider_t2space_layout(tmp_path / "lumbar")


def test_loading_names_missing_patients(tmp_path: Path) -> None:
    root = write_spider_t2space(tmp_path / "spider")
    with pytest.raises(InputError, match=r"\['9'\] are not listed"):
        load_spider_t2space(root, names=["1", "9"], spacing_mm=2.0)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), SPIDER_AFFINE), str(root / "labels" / "2.nii.gz"))
    with pytest.raises(InputError, match="does not share the grid"):
        load_spider_t2space(root, names=["2"], spacing_mm=2.0)


def test_training_config_holds_out_spider_patients(tmp_path: Path) -> None:
    root = write_spider_t2space(tmp_path / "spider", patients=("1", "2", "3"))
    config = synthetic_smoke_config(
        tmp_path,
        data__spider_t2space=str(root),
        data__spider_t2space_validation=["2"],
        data__source_share={"SPIDER": 0.5, "synthetic": 0.5},
        training__epochs=1,
    )
    training, validation = load_cases(config)
    assert sorted(c.name for c in training if c.source == "SPIDER") == ["spider_1", "spider_3"]
    assert [c.name for c in validation] == ["spider_2"]
    result = train(config, output_dir=tmp_path / "run", device="cpu")
    assert result["best"]["epoch"] == 1
    row = (tmp_path / "run" / "metrics.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    assert row[3] and row[4]  # body and disc Dice both measured on the held-out patient


def test_failed_patients_count_as_wrong() -> None:
    good = PatientResult("1", dice_vertebral_body=0.9, dice_disc=0.8, level_correct=True)
    failed = PatientResult("2", failed="no spinal canal is labelled")
    summary = summarise([good, failed])
    assert summary["mean_dice_vertebral_body"] == pytest.approx(0.45)
    assert summary["level_accuracy"] == pytest.approx(0.5)
    assert summary["failed"] == [{"case": "2", "reason": "no spinal canal is labelled"}]


@pytest.mark.shared_data
def test_evaluate_seg_on_real_spider_t2space_patients(shared_datasets: Path, tmp_path: Path) -> None:
    """The shipped model through ``modic evaluate seg`` on two held-out real patients."""
    source = shared_datasets / "spider_t2space"
    root = tmp_path / "spider"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    with (source / "cases.csv").open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["patient"] in {"45", "136"}]
    with (root / "cases.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        for folder in ("images", "labels"):
            shutil.copy(source / folder / f"{row['patient']}.nii.gz", root / folder)
    out = tmp_path / "seg.json"
    done = subprocess.run(
        [sys.executable, "-m", "modic", "evaluate", "seg", "--data", str(root), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads(out.read_text(encoding="utf-8"))
    assert metrics["layout"] == "spider_t2space" and metrics["n_cases"] == 2 and metrics["failed"] == []
    for case in metrics["cases"]:
        assert case["dice_vertebral_body"] > 0.8 and case["dice_disc"] > 0.7, case
    assert {k: metrics[k] is not None for k in ("mean_dice_vertebral_body", "mean_dice_disc", "level_accuracy")} == {
        "mean_dice_vertebral_body": True, "mean_dice_disc": True, "level_accuracy": True
    }


def test_specks_of_disc_label_are_not_counted_as_discs() -> None:
    image, mask = fake_spider_arrays()
    mask[5, 20, 2] = 2  # one stray voxel above the top disc
    volume = Volume(image, SPIDER_AFFINE, {})
    components, count = labelled_discs(mask, volume, levels=load_settings({"levels": {"min_disc_volume_mm3": 250}}).levels)
    assert count == 3
    assert components[5, 20, 2] == 0
    assert set(np.unique(components[mask == 2]).tolist()) == {0, 1, 2, 3}
