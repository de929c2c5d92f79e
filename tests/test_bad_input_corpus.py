"""The representative cases of ``scripts/hostile_corpus.py``, built the same way, on a tiny synthetic study.

Encodings, vendor private tags, missing or empty optional attributes and
series mixed into the study must read exactly as the clean export (same T1
and T2 voxels and geometry), and a study without its optional attributes is
analysed to the end, DICOM SEG and SR included; a T1 that cannot be used is
refused with its reason in the decision log and the study goes on as
T2-only, flagged. ``modic inspect`` keeps the contract on every case: exit 0,
or 1 with one line and no traceback.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from helpers.bad_input import assert_clean_failure, run_cli
from helpers.segmentation import REPO_ROOT

from modic.io.study import StudyImages, load_study
from modic.pipeline import input_flags
from modic.synth import generate_study, write_study


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile_corpus", REPO_ROOT / "scripts" / "hostile_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


corpus = _script()

READ_AS_CLEAN = [
    "jpeg_ls", "jpeg_2000", "rle", "deflated", "big_endian", "siemens_private_tags", "philips_private_sequences",
    "no_slice_thickness", "no_series_description", "no_instance_number", "no_optional_attributes",
    "no_patient_study_attributes", "empty_type2_attributes",
    "scout_mixed_in", "derived_adc_mpr_capture_mixed_in", "zero_length_file", "non_dicom_files_named_dcm",
    "enhanced_jpeg_ls_two_files", "enhanced_rle_one_file",
]
T1_REFUSED = {
    "truncated_file": "pixel data truncated",
    "imager_pixel_spacing_only": "has no PixelSpacing",
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, StudyImages]:
    """The corpus study as plain DICOM, the same with the extra series, and the plain study read."""
    root = tmp_path_factory.mktemp("corpus")
    study = generate_study(seed=corpus.SEED, config="tiny", modic=corpus.PLANTED)
    write_study(study, root / "plain", formats=("dicom",))
    write_study(study, root / "extra", formats=("dicom",), extra_series=("stir", "t2fs", "axial", "localizer", "derived"))
    return root / "plain" / "dicom", root / "extra" / "dicom", load_study(root / "plain" / "dicom")


def _same_images(read: StudyImages, clean: StudyImages) -> None:
    for role in ("t1", "t2"):
        ours, theirs = getattr(read, role), getattr(clean, role)
        assert ours is not None and theirs is not None, role
        np.testing.assert_array_equal(ours.array, theirs.array)
        np.testing.assert_allclose(ours.affine, theirs.affine, atol=1e-4)


def _inspect_keeps_the_contract(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, ["inspect", study])
    assert result.code == 0 and "Traceback" not in result.err, result.err


@pytest.mark.parametrize("case", READ_AS_CLEAN)
def test_hostile_case_reads_as_the_clean_study(
    exports: tuple[Path, Path, StudyImages], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, extra, clean = exports
    study = corpus.build_case(case, plain, extra, tmp_path)

    read = load_study(study)

    _same_images(read, clean)
    assert not input_flags(read), "nothing was changed that the report must flag"
    _inspect_keeps_the_contract(study, capsys)


def test_synth_extra_series_are_not_mistaken_for_t1_or_t2(
    exports: tuple[Path, Path, StudyImages], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """STIR, fat-suppressed T2, axial blocks, a localizer and a derived series beside the sagittal T1 and T2."""
    plain, extra, clean = exports
    study = corpus.build_case("synth_extra_series", plain, extra, tmp_path)

    read = load_study(study)

    _same_images(read, clean)
    roles = {d["role"] for d in read.decisions if d["event"] == "series"}
    assert len([d for d in read.decisions if d["event"] == "series"]) >= 7 and roles == {"t1", "t2", None}
    _inspect_keeps_the_contract(study, capsys)


@pytest.mark.parametrize(("case", "reason"), sorted(T1_REFUSED.items()))
def test_unusable_t1_is_refused_with_its_reason_and_the_t2_goes_on_alone(
    exports: tuple[Path, Path, StudyImages], tmp_path: Path, case: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, extra, clean = exports
    study = corpus.build_case(case, plain, extra, tmp_path)

    read = load_study(study)

    assert read.t1 is None and read.t2 is not None
    np.testing.assert_array_equal(read.t2.array, clean.t2_native.array)
    rejected = [d for d in read.decisions if d["event"] == "series" and d["status"] == "rejected"]
    assert any(reason in d["message"] for d in rejected), rejected
    _inspect_keeps_the_contract(study, capsys)


def _slice_thickness_rows(items: object) -> int:
    """How many Slice Thickness content items an SR content tree holds."""
    count = 0
    for item in items:  # type: ignore[attr-defined]
        names = item.get("ConceptNameCodeSequence")
        count += bool(names) and names[0].CodeMeaning == "Slice Thickness"
        count += _slice_thickness_rows(item.get("ContentSequence") or [])
    return count


@pytest.mark.parametrize("case", ["no_optional_attributes", "empty_type2_attributes"])
def test_study_without_optional_attributes_is_analysed_with_its_dicom_outputs(
    exports: tuple[Path, Path, StudyImages], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SliceThickness, SpacingBetweenSlices and the patient and study Type 2 attributes missing or empty (as
    anonymisers and converters leave them): the geometry comes from ImagePositionPatient, so the study is
    analysed and the SEG and SR are written; they used to end in ``internal error: AttributeError ...
    SliceThickness`` (highdicom reads the source images' attributes)."""
    import highdicom as hd
    import pydicom

    plain, extra, clean = exports
    study_root = corpus.build_case(case, plain, extra, tmp_path)
    if case == "no_optional_attributes":
        folders = sorted(p for p in study_root.iterdir() if p.is_dir())
        corpus._without(*corpus.PATIENT_AND_STUDY)(corpus.Study(study_root, folders[0], folders[1]))
    out = tmp_path / "out"

    result = run_cli(capsys, ["-q", "analyze", study_root, "-o", out, "--device", "cpu"])

    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert (out / "levels.csv").read_text(encoding="utf-8").count("\n") > 1
    seg = hd.seg.segread(out / "seg.dcm")
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    slice_spacing = clean.t1.spacing[2]
    assert float(measures.SliceThickness) == pytest.approx(slice_spacing, rel=1e-4), "the spacing of the positions"
    assert seg.PatientID == "" and seg.AccessionNumber == ""
    sr = pydicom.dcmread(out / "sr.dcm")
    assert _slice_thickness_rows(sr.ContentSequence) == 0, "no thickness the source images do not state"


def test_folder_of_only_foreign_files_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Empty, text, PNG and random files named .dcm, and nothing else: exit 1, one line, no traceback."""
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "IM0001.dcm").write_bytes(b"")
    (tmp_path / "study" / "IM0002.dcm").write_text("not an image", encoding="utf-8")
    (tmp_path / "study" / "IM0003.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "study" / "IM0004.dcm").write_bytes(bytes(128) + b"DICM")

    result = run_cli(capsys, ["inspect", tmp_path / "study"])

    assert_clean_failure(result, mentions=["no DICOM images found"])


def test_script_refuses_a_corpus_inside_the_repository() -> None:
    with pytest.raises(SystemExit):
        corpus.main([str(REPO_ROOT / "corpus")])
    assert not (REPO_ROOT / "corpus").exists()
    shutil.rmtree(REPO_ROOT / "corpus", ignore_errors=True)
