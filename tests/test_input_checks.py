"""Images that are not what they claim: each is refused with one line, or handled and flagged.

Inputs are built for each case from the synthetic study: MONOCHROME1 pixel data,
T1 and T2 swapped, one image given as both, a T2 outside the T1, two exams under
one StudyInstanceUID, a study upside down or mirrored front to back, and a
hostile mix of encodings and series kinds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, RLELossless

from modic.batch.summary import summary_rows
from modic.cli import main
from modic.errors import InputError
from modic.io.dicom_scan import scan_folder
from modic.io.formats import write_nifti
from modic.io.study import load_study
from modic.io.volume import Volume
from modic.pipeline import input_flags
from modic.synth import generate_study, write_study
from modic.synth.dicom_writer import write_enhanced_series

PLANTED = "L4 inferior:1,L5 superior:2"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    root = tmp_path_factory.mktemp("input_checks")
    study = generate_study(seed=11, config="tiny", modic=PLANTED)
    write_study(study, root / "study", formats=("dicom",), extra_series=("localizer", "derived"))
    return study, root / "study" / "dicom"


def _series_folder(dicom: Path, weighting: str) -> Path:
    return next(folder for folder in sorted(dicom.iterdir()) if f"SAG_{weighting}_TSE" in folder.name)


def _copy_pair(dicom: Path, target: Path) -> tuple[Path, Path]:
    t1, t2 = (shutil.copytree(_series_folder(dicom, w), target / w) for w in ("T1", "T2"))
    return Path(t1), Path(t2)


def _rewrite(folder: Path, change) -> None:  # noqa: ANN001 - a callable editing one dataset
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=True)


def test_monochrome1_is_inverted_and_flagged_in_report_html_and_summary(
    written: tuple[object, Path], tmp_path: Path
) -> None:
    _, dicom = written
    t1, _ = _copy_pair(dicom, tmp_path / "study")

    def to_monochrome1(ds: pydicom.Dataset) -> None:
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.PixelData = (65535 - ds.pixel_array.astype(np.uint16)).astype(np.uint16).tobytes()

    _rewrite(t1, to_monochrome1)
    classic, inverted = load_study(_copy_pair(dicom, tmp_path / "classic")[0].parent), load_study(tmp_path / "study")

    np.testing.assert_array_equal(inverted.t1.array, classic.t1.array)
    assert [f.code for f in input_flags(inverted)] == ["monochrome1_inverted"]
    assert input_flags(classic) == []

    out = tmp_path / "out"
    assert main(["-q", "analyze", str(tmp_path / "study"), "-o", str(out), "--device", "cpu", "--no-dicom"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "monochrome1_inverted" in {w["code"] for w in report["warnings"]}
    assert "monochrome1_inverted" in (out / "report.html").read_text()
    rows = summary_rows({report["study"]["key"]: report}, [])
    assert all("monochrome1_inverted" in row["warnings"].split(";") for row in rows)


def test_same_images_as_t1_and_t2_are_refused(written: tuple[object, Path], tmp_path: Path) -> None:
    _, dicom = written
    t1, t2 = _copy_pair(dicom, tmp_path / "study")
    shutil.rmtree(t2)
    shutil.copytree(t1, t2)
    t2_uid = pydicom.uid.generate_uid()

    def as_t2(ds: pydicom.Dataset) -> None:  # the T1 pixels under T2 headers: a wrong export
        ds.SeriesInstanceUID, ds.SOPInstanceUID = t2_uid, pydicom.uid.generate_uid()
        ds.SeriesNumber, ds.SeriesDescription, ds.RepetitionTime, ds.EchoTime = 4, "SAG T2 TSE", 3500, 95

    _rewrite(t2, as_t2)
    with pytest.raises(InputError, match=r"hold identical pixel data: the same images were given as both") as caught:
        load_study(tmp_path / "study")
    assert "\n" not in str(caught.value)

    study, _ = written
    write_nifti(study.t1, tmp_path / "t1.nii.gz")
    with pytest.raises(InputError, match="identical pixel data"):
        load_study(t1=tmp_path / "t1.nii.gz", t2=tmp_path / "t1.nii.gz")


def test_t2_outside_the_t1_is_not_fused(written: tuple[object, Path], tmp_path: Path) -> None:
    study, _ = written
    moved = study.t2.affine.copy()  # type: ignore[attr-defined]
    moved[2, 3] += 600.0
    write_nifti(study.t1, tmp_path / "t1.nii.gz")  # type: ignore[attr-defined]
    write_nifti(Volume(array=study.t2.array, affine=moved, info={}), tmp_path / "t2.nii.gz")  # type: ignore[attr-defined]

    images = load_study(t1=tmp_path / "t1.nii.gz", t2=tmp_path / "t2.nii.gz")

    assert images.t2 is None and images.t2_native is None and "t2" not in images.series
    assert [f.code for f in input_flags(images)] == ["t2_outside_t1"]
    assert "analysed as T1-only" in input_flags(images)[0].message


def test_two_exams_under_one_study_uid_are_not_mixed(written: tuple[object, Path], tmp_path: Path) -> None:
    _, dicom = written
    _, t2 = _copy_pair(dicom, tmp_path / "study")
    other_frame = pydicom.uid.generate_uid()

    def other_exam(ds: pydicom.Dataset) -> None:
        ds.FrameOfReferenceUID = other_frame
        ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20190304"

    _rewrite(t2, other_exam)
    images = load_study(tmp_path / "study")

    assert images.t1 is not None and images.t2 is None
    exam = next(d for d in images.decisions if d["event"] == "exam")
    assert exam["flag"] == "exam_mixed" and "another acquisition date" in exam["message"]
    assert "20190304" not in json.dumps(images.decisions)
    assert "another frame of reference" in exam["message"]
    assert "exam_mixed" in [f.code for f in input_flags(images)]
    rejected = next(d for d in images.decisions if d["event"] == "series" and d["series_number"] == 4)
    assert rejected["status"] == "rejected" and "another exam" in rejected["reasons"][0]

    t1_uid = images.series["t1"].series_uid
    t2_uid = str(pydicom.dcmread(next(t2.iterdir())).SeriesInstanceUID)
    with pytest.raises(InputError, match="come from different exams under one StudyInstanceUID"):
        load_study(tmp_path / "study", t1_uid=t1_uid, t2_uid=t2_uid)


def test_swapped_t1_and_t2_are_refused(written: tuple[object, Path], tmp_path: Path, capsys) -> None:  # noqa: ANN001
    study, _ = written
    write_nifti(study.t1, tmp_path / "t1.nii.gz")  # type: ignore[attr-defined]
    write_nifti(study.t2, tmp_path / "t2.nii.gz")  # type: ignore[attr-defined]
    out = tmp_path / "out"

    code = main(["-q", "analyze", "--t1", str(tmp_path / "t2.nii.gz"), "--t2", str(tmp_path / "t1.nii.gz"),
                 "-o", str(out), "--device", "cpu"])

    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists()
    assert len(error) == 1 and "looks T2-weighted" in error[0] and "swap the T1 and T2" in error[0]


@pytest.mark.parametrize(
    ("world_axis", "expected"), [(2, "looks flipped head to foot"), (1, "look mirrored front to back")]
)
def test_flipped_study_is_refused(
    written: tuple[object, Path], tmp_path: Path, capsys, world_axis: int, expected: str  # noqa: ANN001
) -> None:
    """Pixels flipped along the patient's head-foot or front-back axis, geometry unchanged."""
    study, _ = written
    for name, volume in (("t1", study.t1), ("t2", study.t2)):  # type: ignore[attr-defined]
        axis = int(np.argmax(np.abs(volume.affine[world_axis, :3])))
        write_nifti(volume.with_array(np.ascontiguousarray(np.flip(volume.array, axis=axis))),
                    tmp_path / f"{name}.nii.gz")
    out = tmp_path / "out"

    code = main(["-q", "analyze", "--t1", str(tmp_path / "t1.nii.gz"), "--t2", str(tmp_path / "t2.nii.gz"),
                 "-o", str(out), "--device", "cpu"])

    error = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and not out.exists()
    assert len(error) == 1 and expected in error[0]


def test_mirrored_t1_only_study_is_refused_by_its_reversed_lordosis(
    written: tuple[object, Path], tmp_path: Path, capsys  # noqa: ANN001
) -> None:
    """Without a T2 the canal contrast cannot tell a mirror; the lumbar curve bulging backwards does."""
    study, _ = written
    volume = study.t1  # type: ignore[attr-defined]
    axis = int(np.argmax(np.abs(volume.affine[1, :3])))
    write_nifti(volume.with_array(np.ascontiguousarray(np.flip(volume.array, axis=axis))), tmp_path / "t1.nii.gz")
    out = tmp_path / "out"

    code = main(["-q", "analyze", "--t1", str(tmp_path / "t1.nii.gz"), "-o", str(out), "--device", "cpu"])

    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("modic: error")]
    assert code == 1 and not out.exists()
    assert len(errors) == 1 and "look mirrored front to back" in errors[0] and "bulges" in errors[0]


def test_hostile_mix_of_encodings_and_series_reads_right(written: tuple[object, Path], tmp_path: Path) -> None:
    """Enhanced MR in RLE with private vendor tags, a big-endian classic T2 without optional attributes,
    a localizer and a derived series in the same study: the T1 and T2 are read as the plain export."""
    _, dicom = written
    root = tmp_path / "study"
    for folder in dicom.iterdir():
        if "SAG_T" not in folder.name:
            shutil.copytree(folder, root / folder.name)
    write_enhanced_series(sorted(_series_folder(dicom, "T1").iterdir()), root / "enhanced_t1",
                          transfer_syntax=RLELossless)

    def vendor(ds: pydicom.Dataset) -> None:
        block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        block.add_new(0x10, "OB", b"\x00\x01garbage\xff" * 7)
        block.add_new(0x11, "LO", "private text")

    _rewrite(root / "enhanced_t1", vendor)
    t2 = shutil.copytree(_series_folder(dicom, "T2"), root / "t2_big_endian")
    for path in sorted(Path(t2).iterdir()):
        ds = pydicom.dcmread(path)
        for keyword in ("SliceThickness", "SpacingBetweenSlices", "PatientPosition", "Manufacturer", "SliceLocation",
                        "ScanningSequence", "SequenceVariant", "InstanceNumber"):
            if keyword in ds:
                delattr(ds, keyword)
        pixels = ds.pixel_array
        ds.PixelData = pixels.astype(">u2").tobytes()
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)

    plain, hostile = load_study(dicom), load_study(root)

    np.testing.assert_array_equal(hostile.t1.array, plain.t1.array)
    np.testing.assert_array_equal(hostile.t2.array, plain.t2.array)
    np.testing.assert_allclose(hostile.t1.affine, plain.t1.affine, atol=1e-6)
    statuses = {d["description"]: (d["status"], d["role"]) for d in hostile.decisions if d["event"] == "series"}
    assert sorted(role for _, role in statuses.values() if role) == ["t1", "t2"]
    assert sum(status == "rejected" for status, _ in statuses.values()) == len(statuses) - 2


@pytest.mark.parametrize(
    ("frames", "reason"),
    [(10**9, "above the memory guard"), (3, "NumberOfFrames 3 but 9 per-frame functional group item(s)")],
)
def test_multiframe_file_with_a_false_frame_count_is_skipped(
    written: tuple[object, Path], tmp_path: Path, frames: int, reason: str
) -> None:
    """A compressed Enhanced MR file claiming a hostile frame count is skipped at the scan, before indexing frames."""
    _, dicom = written
    (path,) = write_enhanced_series(sorted(_series_folder(dicom, "T1").iterdir()), tmp_path / "t1",
                                    transfer_syntax=RLELossless)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = frames
    if frames > 9:  # without per-frame groups only the memory guard can tell
        del ds.PerFrameFunctionalGroupsSequence
    ds.save_as(path, enforce_file_format=True)

    scan = scan_folder(tmp_path)

    assert [item.kind for item in scan.skipped] == ["corrupt"] and reason in scan.skipped[0].reason
    assert scan.studies == ()
