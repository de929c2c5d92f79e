"""Bad DICOM study folders: ``modic analyze`` / ``modic inspect`` fail with one clear line, or go on as documented.

Every failure must exit 1 (2 for usage errors) with one ``modic: error:``
line naming the problem and the way out, without traceback, and leave no
output folder and no ``.modic-tmp-*`` temporaries. Missing T1 or T2 is
allowed (``docs``: the analysis continues with a ``missing_t1``/``missing_t2``
warning). Small series come from :mod:`helpers.io`; the cases that must
analyse use a tiny synthetic study.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.uid import RLELossless, generate_uid

from helpers.bad_input import (
    Result,
    assert_clean_failure,
    assert_no_temporaries,
    copy_series,
    edit_all,
    run_cli,
    snapshot,
    synthetic_source,
)
from helpers.io import OTHER_STUDY_UID, pacs_export, volume, write

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return tmp_path / "results" / "out"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_source(tmp_path_factory)


def analyze(capsys: pytest.CaptureFixture[str], study: Path, out: Path, *extra: str) -> Result:
    return run_cli(capsys, ["analyze", study, "-o", out, "--device", "cpu", *extra])


def t1_series(root: Path, **protocol: object) -> list[Path]:
    """A small clean sagittal T1 (24 x 20 x 8) under ``root/t1``."""
    return write(root / "t1", "t1", 3, **protocol)


# --- folders without usable images -------------------------------------------------------------------------------


def test_empty_folder(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    result = analyze(capsys, tmp_path / "empty", out)
    assert_clean_failure(result, mentions=["no DICOM images found", "0 file(s) seen", "give the folder"], outputs=[out])


def test_folder_without_dicom(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "not_dicom"
    study.mkdir()
    (study / "notes.txt").write_text("hello")
    (study / "IM0001.dcm").write_bytes(os.urandom(4096))
    (study / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (study / "empty.dcm").write_bytes(b"")
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no DICOM images found", "4 file(s) seen", "not_dicom"], outputs=[out])


def test_missing_folder(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = analyze(capsys, tmp_path / "nowhere", out)
    assert_clean_failure(result, mentions=["does not exist"], outputs=[out])


def test_file_given_as_study_folder(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [first, *_] = t1_series(tmp_path / "study")
    result = analyze(capsys, first, out)
    assert_clean_failure(result, exit_code=2, mentions=["is a file", "give the DICOM study folder"], outputs=[out])


def test_only_axial_series(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "axial"
    write(study / "t1", "t1", 3, vol=volume(plane="axial"), description="t1_tse_tra")
    write(study / "t2", "t2", 4, vol=volume(plane="axial", seed=4), description="t2_tse_tra")
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal T1 or T2", "axial"], outputs=[out])


def test_only_stir(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "stir"
    write(study / "stir", "stir", 5)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal T1 or T2", "STIR"], outputs=[out])


def test_only_localizer_and_derived(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "loc"
    write(study / "loc", "t1", 1, description="localizer", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    write(study / "mpr", "t2", 2, image_type=("DERIVED", "SECONDARY", "MPR"))
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal", "localizer", "derived"], outputs=[out])


def test_dicomdir_without_its_images(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export = pacs_export(t1_series(tmp_path / "src")[0].parent, tmp_path / "export")
    for path in export.rglob("*"):
        if path.is_file() and path.name != "DICOMDIR":
            path.unlink()
    result = analyze(capsys, export, out)
    assert_clean_failure(result, mentions=["no DICOM images found", "dicomdir"], outputs=[out])


# --- a T1 or a T2 alone: the analysis goes on with a warning -----------------------------------------------------


@pytest.mark.parametrize(("present", "missing"), [("t1", "t2"), ("t2", "t1")])
def test_one_weighting_alone_is_analyzed_with_a_warning(
    synthetic: Path, tmp_path: Path, out: Path, present: str, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = copy_series(synthetic, tmp_path / f"only_{present}", [present, "stir"])
    result = analyze(capsys, study, out, "--no-dicom")
    assert result.code == 0, result.err
    assert f"no usable sagittal {missing.upper()} series" in result.err
    assert "Traceback" not in result.err
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert f"missing_{missing}" in {warning["code"] for warning in report["warnings"]}
    assert set(report["series"]) == {present}
    assert not (out / f"sagittal_{missing}.png").exists()
    assert_no_temporaries(out.parent)


# --- damaged files -----------------------------------------------------------------------------------------------


def test_truncated_file(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = t1_series(tmp_path / "study")
    data = files[3].read_bytes()
    files[3].write_bytes(data[: len(data) * 2 // 3])
    result = analyze(capsys, tmp_path / "study", out)
    assert_clean_failure(result, mentions=["corrupt file", "truncated", files[3].name], outputs=[out])


def test_file_cut_inside_its_header(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = t1_series(tmp_path / "study")
    files[4].write_bytes(files[4].read_bytes()[:300])
    result = analyze(capsys, tmp_path / "study", out)
    assert_clean_failure(result, mentions=["a slice may be missing", "re-export"], outputs=[out])


def test_pixel_data_shorter_than_rows_x_columns(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    files = t1_series(study)
    ds = pydicom.dcmread(files[2])
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(files[2], enforce_file_format=True)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["pixel data truncated", "Rows x Columns"], outputs=[out])


def test_rows_columns_larger_than_pixel_data(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)

    def bigger(ds: pydicom.Dataset) -> None:
        ds.Rows = ds.Rows * 2

    edit_all(study, bigger)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no DICOM images found", "8 corrupt"], outputs=[out])


@pytest.mark.parametrize("keyword", ["ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"])
@pytest.mark.parametrize("where", ["all", "one"])
def test_missing_geometry(
    tmp_path: Path, out: Path, keyword: str, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study"
    files = t1_series(study)
    targets = files if where == "all" else files[4:5]
    for path in targets:
        ds = pydicom.dcmread(path)
        delattr(ds, keyword)
        ds.save_as(path, enforce_file_format=True)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal", keyword], outputs=[out])


@pytest.mark.parametrize("spacing", [b"0\\0", b"0.8\\0", b"NaN\\NaN", b"-0.8\\0.8", b"inf\\1", b"abc\\def", b"0.8"])
def test_invalid_pixel_spacing(tmp_path: Path, out: Path, spacing: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)

    for path in sorted(study.rglob("*.dcm")):
        set_raw(path, 0x00280030, "DS", spacing)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal", "PixelSpacing"], outputs=[out])


def set_raw(path: Path, tag: int, vr: str, value: bytes) -> None:
    """Store ``value`` as the raw bytes of ``tag``, unvalidated (pydicom would refuse to write 'NaN' as DS)."""
    ds = pydicom.dcmread(path)
    padded = value + (b" " if len(value) % 2 else b"")
    ds._dict[pydicom.tag.Tag(tag)] = RawDataElement(pydicom.tag.Tag(tag), vr, len(padded), padded, 0, False, True)
    ds.save_as(path, enforce_file_format=True)


def test_duplicate_slices_with_different_pixels(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    files = t1_series(study)
    ds = pydicom.dcmread(files[3])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    pixels = ds.pixel_array.copy()
    pixels[0, 0] += 1
    ds.PixelData = pixels.tobytes()
    ds.save_as(study / "t1" / "IM0004b.dcm", enforce_file_format=True)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["duplicate slice position", "different pixel data", "choose another series"],
                         outputs=[out])


def test_non_uniform_slice_spacing(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    files = t1_series(study)
    files[3].unlink()
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["non-uniform slice spacing", "a slice may be missing"], outputs=[out])


def test_one_slice_series(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    for path in t1_series(study)[1:]:
        path.unlink()
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["1 slice position", "single-slice"], outputs=[out])


@pytest.mark.parametrize(("degrees", "mentions"), [(0.5, "mixes slice orientations"), (20.0, "angulations")])
def test_mixed_orientations_in_one_series(
    tmp_path: Path, out: Path, degrees: float, mentions: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study"
    files = t1_series(study)
    angle = np.radians(degrees)
    row = [-float(np.sin(angle)), float(np.cos(angle)), 0.0]  # turned about the head-foot axis; column unchanged
    for path in files[4:]:
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [f"{v:.8g}" for v in [*row, 0.0, 0.0, -1.0]]
        ds.save_as(path, enforce_file_format=True)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no usable sagittal", mentions], outputs=[out])


def test_rescale_slope_zero(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study, rescale=(1.0, 0.0))

    def change(ds: pydicom.Dataset) -> None:
        ds.RescaleSlope = "0"

    edit_all(study, change)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["RescaleSlope", "non-zero"], outputs=[out])


# --- folders mixing studies or patients --------------------------------------------------------------------------


def test_two_patients_in_one_folder(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "mixed"
    t1_series(study / "a")
    write(study / "b" / "t1", "t1", 3, study_uid=OTHER_STUDY_UID)
    edit_all(study / "b", lambda ds: setattr(ds, "PatientID", "OTHER-PATIENT"))
    result = analyze(capsys, study, out)
    line = assert_clean_failure(result, mentions=["2 studies", "one study per call", "batch"], outputs=[out])
    assert "IO001" not in line and "OTHER-PATIENT" not in line


def test_two_patients_sharing_a_study_uid(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "mixed"
    t1_series(study)
    write(study / "t2", "t2", 4)
    edit_all(study / "t2", lambda ds: setattr(ds, "PatientID", "OTHER-PATIENT"))
    result = analyze(capsys, study, out)
    line = assert_clean_failure(result, mentions=["2 patients", "PatientID"], outputs=[out])
    assert "IO001" not in result.err and "OTHER-PATIENT" not in line


# --- transfer syntaxes and memory --------------------------------------------------------------------------------


def test_compressed_pixel_data_without_decoder(
    tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydicom.pixels import get_decoder

    study = tmp_path / "study"
    t1_series(study, transfer_syntax=RLELossless)
    decoder = get_decoder(RLELossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg-rle",), "pydicom": ("numpy",)})
    assert not decoder.is_available
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["RLE Lossless", "no installed decoder", 'pip install "modic[codecs]"'],
                         outputs=[out])


def test_corrupt_compressed_pixel_data(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A damaged RLE segment; pylibjpeg-rle even panics (PanicException, a BaseException) on this one."""
    study = tmp_path / "study"
    files = t1_series(study, transfer_syntax=RLELossless)
    ds = pydicom.dcmread(files[3])
    data = bytearray(ds.PixelData)
    data[-3] = 0x81
    ds.PixelData = bytes(data)
    ds.save_as(files[3], enforce_file_format=True)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["cannot decode", files[3].name, "re-export"], outputs=[out])


def test_unknown_transfer_syntax(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)

    def change(ds: pydicom.Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"

    edit_all(study, change)
    assert run_cli(capsys, ["inspect", study]).code == 0
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["1.2.3.4.5.6.7", "transfer syntax", "convert"], outputs=[out])


def test_huge_matrix_is_refused_before_reading_pixels(
    tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study"
    t1_series(study, transfer_syntax=RLELossless)

    def huge(ds: pydicom.Dataset) -> None:
        ds.Rows = ds.Columns = 40000

    edit_all(study, huge)
    result = analyze(capsys, study, out)
    assert_clean_failure(
        result, mentions=["40000 x 40000 x 8", "memory guard", "memory.max_voxels"], outputs=[out]
    )


# --- header text that must stay text -----------------------------------------------------------------------------


def test_path_like_and_non_utf8_descriptions_never_become_paths(
    synthetic: Path, tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = copy_series(synthetic, tmp_path / "work" / "study", ["t1", "t2"])
    bad_t1 = "../../etc/passwd"
    edit_all(study / "t1", lambda ds: setattr(ds, "SeriesDescription", bad_t1))

    def latin_garbage(ds: pydicom.Dataset) -> None:
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8 declared, bytes are not UTF-8
        ds["SeriesDescription"] = pydicom.DataElement(0x0008103E, "LO", b"T2 \xff\xfe\x80 /tmp/x \x1b[31m..\\..")

    edit_all(study / "t2", latin_garbage)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    inspected = run_cli(capsys, ["inspect", study])
    assert inspected.code == 0, inspected.err
    assert "\x1b" not in inspected.out
    result = analyze(capsys, study, out, "--no-dicom")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "\x1b" not in result.err
    created = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    new = [p for p in created if p not in before]
    assert all(p.parts[0] == "results" and p.parts[1:2] in ((), ("out",)) for p in new), new
    assert not (tmp_path / "etc").exists()
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["series"]["t1"]["description"] == bad_t1
    assert "\x1b" not in report["series"]["t2"]["description"]


# --- things that are not readable files --------------------------------------------------------------------------


def test_unreadable_entries_only(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    study.mkdir()
    os.mkfifo(study / "IM0001.dcm")
    (study / "IM0002.dcm").mkdir()
    (study / "IM0003.dcm").symlink_to(study / "gone.dcm")
    (study / "IM0004.dcm").symlink_to(study / "IM0005.dcm")
    (study / "IM0005.dcm").symlink_to(study / "IM0004.dcm")
    result = analyze(capsys, study, out)
    assert_clean_failure(result, mentions=["no DICOM images found", "unreadable"], outputs=[out])


def test_symlink_loops_are_scanned_once(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)
    (study / "t1" / "again").symlink_to(study, target_is_directory=True)
    (study / "loop").symlink_to(study / "loop")
    os.mkfifo(study / "t1" / "IM9999.dcm")
    result = run_cli(capsys, ["inspect", study])
    assert result.code == 0, result.err
    assert "8 images" in result.out and "accepted T1" in result.out


def test_unknown_series_uid(tmp_path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)
    result = analyze(capsys, study, out, "--t1-uid", "1.2.3.999")
    assert_clean_failure(result, mentions=["'1.2.3.999' is not a series"], outputs=[out])


# --- the output folder -------------------------------------------------------------------------------------------


def test_existing_output_folder_is_left_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    before = snapshot(out)
    result = analyze(capsys, study, out)
    assert_clean_failure(result, exit_code=2, mentions=["is not empty", "--overwrite"])
    assert snapshot(out) == before
    assert_no_temporaries(tmp_path)


def test_output_path_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    result = analyze(capsys, study, out)
    assert_clean_failure(result, exit_code=2, mentions=["is not a folder"])
    assert out.read_text() == "keep me"


def test_output_below_a_file_is_refused_before_the_analysis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = tmp_path / "study"
    t1_series(study)
    blocker = tmp_path / "results.txt"
    blocker.write_text("keep me")
    result = analyze(capsys, study, blocker / "out")
    assert_clean_failure(result, exit_code=2, mentions=["cannot be created", "is not a folder"])
    assert blocker.read_text() == "keep me"


def test_output_the_file_system_refuses(synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that cannot be written after the analysis (/proc takes no new folders, even from root)."""
    study = copy_series(synthetic, tmp_path / "study", ["t1"])
    out = Path("/proc") / f"modic-test-{os.getpid()}" / "out"
    result = analyze(capsys, study, out, "--no-dicom")
    assert result.code in (1, 2), result.err
    assert_clean_failure(result, exit_code=result.code, mentions=[str(out)], outputs=[out])


def test_inspect_empty_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    result = run_cli(capsys, ["inspect", tmp_path / "empty"])
    assert_clean_failure(result, mentions=["no DICOM images found"])
