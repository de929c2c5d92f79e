"""load_study end to end: PACS exports, NIfTI/MHA files, and the errors a user can act on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import RLELossless

from modic.errors import InputError, SeriesSelectionError, UsageError
from modic.io.formats import write_nifti
from modic.io.study import load_study
from helpers.io import OTHER_STUDY_UID, STUDY_UID, pacs_export, volume, write

T1_GRID = dict(spacing=(0.8, 0.8, 4.0), origin=(14.0, -20.0, 30.0))
T2_GRID = dict(spacing=(0.6, 0.7, 3.5), origin=(12.5, -18.0, 33.0))


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    """A DICOMDIR export: T1, T2 (other grid, RLE), STIR, axial T2, localizer, plus junk files."""
    source = tmp_path / "written"
    write(
        source / "loc",
        "t2",
        1,
        vol=volume((16, 16, 3)),
        description="localizer",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
    )
    write(source / "t1", "t1", 3, vol=volume((24, 20, 8), seed=3, **T1_GRID))
    write(source / "t2", "t2", 4, vol=volume((28, 26, 8), seed=4, **T2_GRID), transfer_syntax=RLELossless)
    write(source / "stir", "stir", 5)
    write(source / "ax", "t2", 6, vol=volume((16, 16, 5), plane="axial"), description="t2_tse_tra")
    root = pacs_export(source, tmp_path / "export")
    (root / "report.pdf").write_bytes(b"%PDF-1.4 not an image")
    return root


def test_load_study_from_a_pacs_export(export: Path) -> None:
    study = load_study(export)

    assert study.study_uid == STUDY_UID
    assert study.t1 is not None and study.t2 is not None and study.t2_native is not None
    np.testing.assert_array_equal(study.t1.array, volume((24, 20, 8), seed=3, **T1_GRID).array)
    np.testing.assert_allclose(study.t1.affine, volume((24, 20, 8), **T1_GRID).affine, atol=1e-4)
    np.testing.assert_array_equal(study.t2_native.array, volume((28, 26, 8), seed=4, **T2_GRID).array)
    assert study.t2.shape == study.t1.shape
    np.testing.assert_array_equal(study.t2.affine, study.t1.affine)
    assert study.t1.info["weighting"] == "T1" and study.t2.info["role"] == "t2"

    assert study.series["t1"].series_number == 3 and study.series["t1"].repetition_time == 550
    assert study.series["t2"].description == "t2_tse_sag" and study.series["t2"].plane == "sagittal"
    json.dumps({role: info.to_dict() for role, info in study.series.items()})

    headers = study.t1_source_headers
    assert len(headers) == 8 and all("PixelData" not in h for h in headers)
    assert all(str(h.PatientName) == "TEST^IO" for h in headers)  # full headers, not the scan's subset
    normal = np.cross(*(np.array([float(v) for v in headers[0].ImageOrientationPatient]).reshape(2, 3)))
    along = [float(np.dot([float(v) for v in h.ImagePositionPatient], normal)) for h in headers]
    assert along == sorted(along)

    json.dumps(study.decisions)
    events = [d["event"] for d in study.decisions]
    assert events[0] == "scan" and events.count("series") == 5 and "resample" in events
    scan = study.decisions[0]
    assert scan["skipped_counts"] == {"dicomdir": 1, "not_dicom": 1}
    resample = next(d for d in study.decisions if d["event"] == "resample")
    assert resample["identity"] is False and resample["from_shape"] == [28, 26, 8]
    assert all({"event", "level", "message"} <= set(d) for d in study.decisions)


def test_public_api_is_reachable_from_modic_io() -> None:
    import modic.io

    assert modic.io.load_study is load_study
    assert modic.io.read_slice.__module__ == "modic.io.formats"


def test_user_chosen_series_by_uid(export: Path) -> None:
    automatic = load_study(export)
    stir_uid = next(d["series_uid"] for d in automatic.decisions if d["event"] == "series" and d["series_number"] == 5)

    study = load_study(export, t2_uid=stir_uid)

    assert study.series["t2"].series_uid == stir_uid and study.series["t2"].weighting == "STIR"


def test_memory_guard_applies_before_any_series_is_read(export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modic.settings import load_settings

    config = load_settings({"io": {"memory": {"max_voxels": 4000}}}).io
    monkeypatch.setattr("modic.io.study.load_series", lambda *a, **k: pytest.fail("a series was read"))
    # The T1 (20 x 24 x 8 = 3,840 voxels) fits; the T2 does not, and is refused before the T1 is read.
    with pytest.raises(
        InputError, match=r"series 4 't2_tse_sag' .* is 26 x 28 x 8 = 5,824 voxels, above the memory guard of 4,000"
    ):
        load_study(export, config=config)


def test_two_studies_in_one_folder_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3)
    write(tmp_path / "b", "t1", 3, study_uid=OTHER_STUDY_UID)

    with pytest.raises(InputError) as caught:
        load_study(tmp_path)
    message = str(caught.value)
    assert "holds 2 studies" in message and STUDY_UID in message and OTHER_STUDY_UID in message
    assert "\n" not in message


def test_missing_t2_is_allowed_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3)
    write(tmp_path / "b", "stir", 5)

    study = load_study(tmp_path)

    assert study.t1 is not None and study.t2 is None and study.t2_native is None
    [missing] = [d for d in study.decisions if d["event"] == "missing"]
    assert missing["role"] == "t2" and missing["level"] == "warning"
    assert "t2" not in study.series and study.t2_source_headers == ()


def test_missing_t1_is_allowed(tmp_path: Path) -> None:
    write(tmp_path / "b", "t2", 4)

    study = load_study(tmp_path)

    assert study.t1 is None and study.t2 is study.t2_native and study.t2 is not None
    assert study.t1_source_headers == ()


def test_missing_both_lists_what_was_found(tmp_path: Path) -> None:
    write(tmp_path / "b", "stir", 5)
    write(tmp_path / "c", "t2", 6, vol=volume((16, 16, 5), plane="axial"), description="t2_tse_tra")

    with pytest.raises(SeriesSelectionError, match=r"no usable sagittal T1 or T2.*#5 't2_tirm_sag' sagittal STIR"):
        load_study(tmp_path)


def test_folder_without_dicom(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"no DICOM images found .*1 file\(s\) seen; skipped: 1 not_dicom"):
        load_study(tmp_path)


def test_nifti_and_mha_files(tmp_path: Path) -> None:
    t1 = volume((20, 18, 6), seed=1, **T1_GRID)
    t2 = volume((22, 24, 5), seed=2, **T2_GRID)
    write_nifti(t1, tmp_path / "t1.nii.gz")
    write_nifti(t2, tmp_path / "t2.nii")
    sitk.WriteImage(sitk.ReadImage(str(tmp_path / "t2.nii")), str(tmp_path / "t2.mha"))

    study = load_study(t1=tmp_path / "t1.nii.gz", t2=tmp_path / "t2.mha")

    assert study.study_uid is None and study.t1_source_headers == ()
    np.testing.assert_array_equal(study.t1.array, t1.array)  # type: ignore[union-attr]
    np.testing.assert_array_equal(study.t2_native.array, t2.array)  # type: ignore[union-attr]
    assert study.t2.shape == t1.shape  # type: ignore[union-attr]
    assert study.series["t2"].source == "itk" and study.series["t1"].plane == "sagittal"

    only = load_study(t1=tmp_path / "t1.nii.gz")
    assert only.t2 is None and [d["role"] for d in only.decisions if d["event"] == "missing"] == ["t2"]


def test_usage_errors(tmp_path: Path) -> None:
    write(tmp_path / "s", "t1", 3)
    one_file = next((tmp_path / "s").iterdir())
    with pytest.raises(UsageError, match="not both"):
        load_study(tmp_path, t1=one_file)
    with pytest.raises(UsageError, match="give a DICOM study folder"):
        load_study()
    with pytest.raises(UsageError, match="give the folder too"):
        load_study(t1=one_file, t1_uid="1.2.3")
    with pytest.raises(UsageError, match="is a file"):
        load_study(one_file)
    with pytest.raises(UsageError, match="is a folder"):
        load_study(t1=tmp_path / "s")


def test_renamed_copy_of_an_export_loads_the_same(export: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for index, path in enumerate(sorted(p for p in export.rglob("*") if p.is_file())):
        shutil.copy(path, flat / f"file{index:04d}")

    a, b = load_study(export), load_study(flat)

    np.testing.assert_array_equal(a.t1.array, b.t1.array)  # type: ignore[union-attr]
    np.testing.assert_array_equal(a.t2.array, b.t2.array)  # type: ignore[union-attr]
