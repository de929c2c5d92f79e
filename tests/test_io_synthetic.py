"""Ingestion of complete synthetic studies from the project's generator (``modic.synth``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modic.cli import main
from modic.io.study import load_study
from modic.synth import SyntheticStudy, generate_study, write_study

EXTRAS = ("stir", "t2fs", "axial", "localizer", "derived")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticStudy, Path, Path]:
    study = generate_study(seed=11, config="tiny")
    root = tmp_path_factory.mktemp("synthetic")
    shuffled = write_study(study, root / "shuffled", extra_series=EXTRAS, shuffle_and_rename=True, non_dicom_file=True)
    fileset = write_study(
        study, root / "fileset", formats=("dicom",), extra_series=EXTRAS, dicomdir=True, transfer_syntax="rle"
    )
    return study, shuffled, fileset


def test_shuffled_export_with_every_series_kind(synthetic: tuple[SyntheticStudy, Path, Path]) -> None:
    study, shuffled, _ = synthetic

    images = load_study(shuffled / "dicom")

    assert images.t1 is not None and images.t2_native is not None and images.t2 is not None
    np.testing.assert_allclose(images.t1.array, study.t1.array, atol=0.5)
    np.testing.assert_allclose(images.t1.affine, study.t1.affine, atol=1e-3)
    np.testing.assert_allclose(images.t2_native.array, study.t2.array, atol=0.5)
    np.testing.assert_allclose(images.t2_native.affine, study.t2.affine, atol=1e-3)
    assert images.t2.shape == images.t1.shape
    assert len(images.t1_source_headers) == study.t1.shape[2]

    truth = json.loads((shuffled / "truth.json").read_text())
    written = truth["outputs"]["dicom"]["series"]
    assert images.series["t1"].series_uid == written["t1"]["series_uid"]
    assert images.series["t2"].series_uid == written["t2"]["series_uid"]
    entries = {d["series_uid"]: d for d in images.decisions if d["event"] == "series"}
    assert len(entries) == 2 + len(EXTRAS)
    for name in EXTRAS:
        assert entries[written[name]["series_uid"]]["status"] == "rejected", name
    assert entries[written["stir"]["series_uid"]]["weighting"] == "STIR"
    assert entries[written["t2fs"]["series_uid"]]["weighting"] == "T2_FS"
    assert "localizer" in entries[written["localizer"]["series_uid"]]["reasons"][0]
    assert "derived" in entries[written["derived"]["series_uid"]]["reasons"][0]
    assert images.decisions[0]["skipped_counts"] == {"not_dicom": 1}


def test_dicomdir_fileset_with_rle_reads_the_same(synthetic: tuple[SyntheticStudy, Path, Path]) -> None:
    _, shuffled, fileset = synthetic

    a, b = load_study(shuffled / "dicom"), load_study(fileset / "dicom")

    np.testing.assert_array_equal(a.t1.array, b.t1.array)  # type: ignore[union-attr]
    np.testing.assert_array_equal(a.t2.array, b.t2.array)  # type: ignore[union-attr]
    np.testing.assert_array_equal(a.t1.affine, b.t1.affine)  # type: ignore[union-attr]
    assert b.decisions[0]["skipped_counts"] == {"dicomdir": 1}


def test_generator_nifti_matches_the_dicom_reading(synthetic: tuple[SyntheticStudy, Path, Path]) -> None:
    _, shuffled, _ = synthetic

    from_dicom = load_study(shuffled / "dicom")
    from_nifti = load_study(t1=shuffled / "nifti" / "t1.nii.gz", t2=shuffled / "nifti" / "t2.nii.gz")

    np.testing.assert_allclose(from_nifti.t1.array, from_dicom.t1.array, atol=0.5)  # type: ignore[union-attr]
    np.testing.assert_allclose(from_nifti.t1.affine, from_dicom.t1.affine, atol=1e-3)  # type: ignore[union-attr]
    np.testing.assert_allclose(from_nifti.t2.array, from_dicom.t2.array, atol=1.0)  # type: ignore[union-attr]


def test_inspect_on_a_synthetic_export(
    synthetic: tuple[SyntheticStudy, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, shuffled, _ = synthetic

    assert main(["inspect", str(shuffled / "dicom"), "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    [entry] = document["studies"]
    chosen = {s["role"]: s["description"] for s in entry["series"] if s["status"] == "accepted"}
    assert set(chosen) == {"t1", "t2"}
