"""Build a hostile-input corpus outside the repository from ``modic synth`` studies, and run modic on it.

Each case is a copy of one tiny synthetic study (``modic synth``, DICOM)
changed the way real archives and scanners change studies: compressed and
big-endian transfer syntaxes, private vendor tags, optional attributes left
out or left empty, localizers and derived series mixed in, broken and foreign files among
the images. ``modic inspect`` and ``modic analyze`` run on every case (as a
user runs them, in a new process), and the outcome is held to modic's
contract:

* exit 0: analysed; the grades (``levels.csv``) are those of the unchanged
  study, or report.json carries a warning saying what differs
  (a silent different analysis is a violation);
* exit 1 or 2: refused with exactly one line on stderr that says what is
  wrong and what to do, and no traceback;
* anything else (a crash, a traceback, several lines, or modic's one-line
  ``internal error``, which is an unexpected exception and not a refusal)
  is a violation.

The table (also ``OUT/results.csv``) gives each case's exit codes, the
error line or the warnings, and the verdict; the script exits 1 when any case
violates the contract. The representative cases are in the default test suite
(``tests/test_bad_input_corpus.py``).

Last run with analyze (all 23 cases, 2-core CPU VM, shared, about 7 minutes): every case kept
the contract. 21 analysed with the clean study's grades (its low_confidence warnings only),
among them ``no_slice_thickness`` and ``no_optional_attributes`` with their SEG and SR (they had
ended in ``internal error: AttributeError ... SliceThickness`` from highdicom writing them) and
the new ``no_patient_study_attributes`` and ``empty_type2_attributes`` (which had ended in
internal errors on PatientID and an empty SpacingBetweenSlices; all fixed in
``modic/report/dicom_seg.py``, ``highdicom_sources``);
``imager_pixel_spacing_only`` and ``truncated_file`` analysed without their unusable T1, their
grades differing with the warnings missing_t1 and undetermined_endplates. No case refused, no
internal error, no traceback.

Usage:
    python scripts/hostile_corpus.py OUT [--case NAME ...] [--no-analyze]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

SEED = 3
PLANTED = "L4 inferior:1,L5 superior:2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
OPTIONAL_ATTRIBUTES = (
    "SliceThickness", "SpacingBetweenSlices", "SeriesDescription", "InstanceNumber", "SliceLocation",
    "Manufacturer", "PatientPosition", "ScanningSequence", "SequenceVariant", "ScanOptions", "AcquisitionDate",
    "SeriesDate", "ProtocolName",
)
"""Attributes a scanner or an anonymiser may leave out; none carries the geometry or the pixels."""
PATIENT_AND_STUDY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "StudyID", "AccessionNumber",
)
"""Type 2 attributes of the Patient and General Study modules, which anonymisers often drop instead of emptying."""
EMPTY_TYPE_2 = (
    "SliceThickness", "SpacingBetweenSlices", *PATIENT_AND_STUDY, "SeriesNumber", "InstanceNumber", "Manufacturer",
    "PatientPosition", "Laterality",
)
"""Type 2 (and Type 3) attributes that DICOM lets a scanner write empty: present, with no value."""


@dataclass(frozen=True)
class Study:
    """The case's copy of the synthetic study: its root folder and its T1 and T2 series folders."""

    root: Path
    t1: Path
    t2: Path


def _rewrite(folder: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    """Apply ``change`` to every file of a series folder and save it in its (possibly new) transfer syntax."""
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=True)


def _compress(syntax: str) -> Callable[[Study], None]:
    def case(study: Study) -> None:
        for folder in (study.t1, study.t2):
            _rewrite(folder, lambda ds: ds.compress(syntax))
    return case


def _deflated(study: Study) -> None:
    def change(ds: pydicom.Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    for folder in (study.t1, study.t2):
        _rewrite(folder, change)


def _big_endian(study: Study) -> None:
    for folder in (study.t1, study.t2):
        for path in sorted(folder.iterdir()):
            ds = pydicom.dcmread(path)
            ds.PixelData = ds.pixel_array.astype(">u2").tobytes()
            ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
            pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=False, force_encoding=True)


def _siemens_private(study: Study) -> None:
    """CSA image and series headers (binary blobs), as Siemens writes them, and a private group 0019."""
    def change(ds: pydicom.Dataset) -> None:
        csa = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        csa.add_new(0x08, "CS", "IMAGE NUM 4")
        csa.add_new(0x10, "OB", b"SV10\x04\x03\x02\x01" + bytes(range(256)) * 8)
        csa.add_new(0x20, "OB", b"SV10\x04\x03\x02\x01" + b"\xff\x00" * 1000)
        mr = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        mr.add_new(0x08, "CS", "IMAGE NUM 4")
        mr.add_new(0x0B, "DS", "4.1")
        mr.add_new(0x12, "SL", [0, 0, 1])
    for folder in (study.t1, study.t2):
        _rewrite(folder, change)


def _philips_private(study: Study) -> None:
    """Philips private groups 2001 and 2005, with nested private sequences."""
    def change(ds: pydicom.Dataset) -> None:
        imaging = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
        imaging.add_new(0x03, "FL", 1.5)
        imaging.add_new(0x1A, "CS", "SAG")
        item = pydicom.Dataset()
        item.add_new(0x00080100, "SH", "X")
        inner = item.private_block(0x2005, "Philips MR Imaging DD 005", create=True)
        inner.add_new(0x10, "OB", b"\x01\x02" * 50)
        mr = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        mr.add_new(0x0E, "SQ", [item, pydicom.Dataset()])
        mr.add_new(0x14, "LO", "private")
    for folder in (study.t1, study.t2):
        _rewrite(folder, change)


def _without(*keywords: str) -> Callable[[Study], None]:
    def case(study: Study) -> None:
        def change(ds: pydicom.Dataset) -> None:
            for keyword in keywords:
                if keyword in ds:
                    delattr(ds, keyword)
        for folder in (study.t1, study.t2):
            _rewrite(folder, change)
    return case


def _emptied(*keywords: str) -> Callable[[Study], None]:
    def case(study: Study) -> None:
        def change(ds: pydicom.Dataset) -> None:
            for keyword in keywords:
                setattr(ds, keyword, None)
        for folder in (study.t1, study.t2):
            _rewrite(folder, change)
    return case


def _imager_pixel_spacing_only(study: Study) -> None:
    def change(ds: pydicom.Dataset) -> None:
        ds.ImagerPixelSpacing = ds.PixelSpacing
        del ds.PixelSpacing
    _rewrite(study.t1, change)


def _copy_series(source: Path, target: Path, change: Callable[[pydicom.Dataset], None]) -> None:
    """A new series made of ``source``'s images, changed by ``change`` (new series and instance UIDs)."""
    shutil.copytree(source, target)
    series_uid = generate_uid()

    def renew(ds: pydicom.Dataset) -> None:
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = int(ds.SeriesNumber) + 100
        change(ds)
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    _rewrite(target, renew)


def _derived_series(study: Study) -> None:
    """ADC-like, MPR and secondary-capture copies of the T1 and T2 beside them."""
    def adc(ds: pydicom.Dataset) -> None:
        ds.ImageType = ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]
        ds.SeriesDescription = "SAG ADC"

    def mpr(ds: pydicom.Dataset) -> None:
        ds.ImageType = ["DERIVED", "SECONDARY", "MPR"]
        ds.SeriesDescription = "SAG T1 MPR"

    def capture(ds: pydicom.Dataset) -> None:
        ds.SOPClassUID = SECONDARY_CAPTURE
        ds.SeriesDescription = "SAG T2 screen capture"

    _copy_series(study.t2, study.root / "adc", adc)
    _copy_series(study.t1, study.root / "mpr", mpr)
    _copy_series(study.t2, study.root / "capture", capture)


def _scout(study: Study) -> None:
    """A localizer copy of the T2 (ImageType LOCALIZER, description 'scout')."""
    def change(ds: pydicom.Dataset) -> None:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SeriesDescription = "scout"
    _copy_series(study.t2, study.root / "scout", change)


def _truncated_file(study: Study) -> None:
    path = sorted(study.t1.iterdir())[len(list(study.t1.iterdir())) // 2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero_length_file(study: Study) -> None:
    (study.t1 / "IM9999.dcm").write_bytes(b"")


def _foreign_files(study: Study) -> None:
    """Files named .dcm that are not DICOM: a text note, a PNG, random bytes, a DICM preamble without a dataset."""
    (study.t1 / "NOTE.dcm").write_text("exported by PACS viewer\n", encoding="utf-8")
    (study.t1 / "PREVIEW.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    (study.t2 / "RANDOM.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    (study.t2 / "EMPTYDICM.dcm").write_bytes(bytes(128) + b"DICM")


def _enhanced(files: int, syntax: str) -> Callable[[Study], None]:
    def case(study: Study) -> None:
        from modic.synth.dicom_writer import write_enhanced_series

        sources = sorted(study.t1.iterdir())
        target = study.root / "t1_enhanced"
        write_enhanced_series(sources, target, enhanced_mr=True, files=files, transfer_syntax=syntax)
        shutil.rmtree(study.t1)
    return case


CASES: dict[str, Callable[[Study], None]] = {
    "clean": lambda study: None,
    "jpeg_ls": _compress(JPEGLSLossless),
    "jpeg_2000": _compress(JPEG2000Lossless),
    "rle": _compress(RLELossless),
    "deflated": _deflated,
    "big_endian": _big_endian,
    "siemens_private_tags": _siemens_private,
    "philips_private_sequences": _philips_private,
    "no_slice_thickness": _without("SliceThickness", "SpacingBetweenSlices"),
    "no_series_description": _without("SeriesDescription", "ProtocolName"),
    "no_instance_number": _without("InstanceNumber"),
    "no_optional_attributes": _without(*OPTIONAL_ATTRIBUTES),
    "no_patient_study_attributes": _without(*PATIENT_AND_STUDY),
    "empty_type2_attributes": _emptied(*EMPTY_TYPE_2),
    "imager_pixel_spacing_only": _imager_pixel_spacing_only,
    "scout_mixed_in": _scout,
    "derived_adc_mpr_capture_mixed_in": _derived_series,
    "synth_extra_series": lambda study: None,  # the study exported with STIR, T2 FS, axial, localizer, derived
    "truncated_file": _truncated_file,
    "zero_length_file": _zero_length_file,
    "non_dicom_files_named_dcm": _foreign_files,
    "enhanced_jpeg_ls_two_files": _enhanced(2, JPEGLSLossless),
    "enhanced_rle_one_file": _enhanced(1, RLELossless),
}


def synth(out: Path, *extra: str) -> Path:
    """``modic synth`` of the corpus study into ``out``; returns its DICOM folder."""
    command = [sys.executable, "-m", "modic", "-q", "synth", str(out), "--seed", str(SEED), "--config", "tiny",
               "--format", "dicom", "--modic", PLANTED, *extra]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (key,) = [p for p in out.iterdir() if p.is_dir()]
    return key / "dicom"


def build_case(name: str, base: Path, extra: Path, root: Path) -> Path:
    """The study folder of case ``name`` under ``root``."""
    study_root = root / name / "study"
    if study_root.exists():
        shutil.rmtree(study_root)
    shutil.copytree(extra if name == "synth_extra_series" else base, study_root)
    folders = sorted(p for p in study_root.iterdir() if p.is_dir())
    t1 = next(p for p in folders if "T1" in p.name.upper() and "SAG" in p.name.upper())
    t2 = next(p for p in folders if "T2" in p.name.upper() and "SAG" in p.name.upper() and "FS" not in p.name.upper())
    CASES[name](Study(study_root, t1, t2))
    return study_root


@dataclass
class Outcome:
    case: str
    inspect_code: int
    analyze_code: int | None
    message: str
    verdict: str


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "modic", *command], capture_output=True, text=True, timeout=900)


INTERNAL_ERROR = "internal error"
"""What modic's last-resort handler prints for an exception it did not expect: a bug, never a refusal."""


def _contract(result: subprocess.CompletedProcess[str]) -> str:
    """'' when a run kept the exit-code and stderr contract, else what broke it.

    A refusal must say what is wrong with the input and what to do; a one-line
    ``internal error`` (an unexpected exception caught at the top) keeps the
    form of the contract but not its sense, so it breaks it as a traceback does.
    """
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Traceback" in result.stderr:
        return "traceback on stderr"
    if INTERNAL_ERROR in result.stderr:
        return "internal error"
    if result.returncode not in (0, 1, 2):
        return f"exit code {result.returncode}"
    if result.returncode != 0 and len(lines) != 1:
        return f"{len(lines)} stderr lines on failure"
    return ""


def _grades(out: Path) -> list[tuple[str, ...]]:
    with (out / "levels.csv").open(newline="", encoding="utf-8") as handle:
        return [(r["endplate"], r["modic_type"], r["mixed"]) for r in csv.DictReader(handle)]


def run_case(name: str, study: Path, root: Path, baseline: list[tuple[str, ...]] | None, *, analyze: bool) -> Outcome:
    inspected = _run(["inspect", str(study)])
    broken = _contract(inspected)
    if not analyze:
        message = inspected.stderr.strip().splitlines()[-1] if inspected.stderr.strip() else "inspected"
        return Outcome(name, inspected.returncode, None, message, f"VIOLATION: inspect {broken}" if broken else "ok")
    out = root / name / "out"
    if out.exists():
        shutil.rmtree(out)
    analysed = _run(["analyze", str(study), "-o", str(out), "--device", "cpu"])
    if broken:
        broken = f"inspect {broken}"
    elif _contract(analysed):
        broken = f"analyze {_contract(analysed)}"
    if analysed.returncode != 0:
        message = analysed.stderr.strip().splitlines()[-1] if analysed.stderr.strip() else ""
        return Outcome(name, inspected.returncode, analysed.returncode, message, f"VIOLATION: {broken}" if broken else "ok")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    codes = sorted({w["code"] for w in report.get("warnings", []) if w.get("severity") == "warning"})
    same = baseline is None or _grades(out) == baseline
    message = ("grades as the clean study" if same else "grades differ") + (f"; warnings {', '.join(codes)}" if codes else "")
    if not broken and not same and not codes:
        broken = "different grades without a warning"
    return Outcome(name, inspected.returncode, 0, message, f"VIOLATION: {broken}" if broken else "ok")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="corpus folder (outside the repository; created)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases (repeatable)")
    parser.add_argument("--no-analyze", action="store_true", help="run modic inspect only (fast)")
    args = parser.parse_args(argv)
    root: Path = args.out.resolve()
    repository = Path(__file__).resolve().parents[1]
    if root == repository or repository in root.parents:
        parser.error(f"the corpus must be outside the repository ({repository})")
    root.mkdir(parents=True, exist_ok=True)
    base = synth(root / "_synth") if not (root / "_synth").exists() else next((root / "_synth").iterdir()) / "dicom"
    extra_root = root / "_synth_extra"
    extra = (synth(extra_root, "--extra-series", "stir,t2fs,axial,localizer,derived") if not extra_root.exists()
             else next(extra_root.iterdir()) / "dicom")
    names = args.case or list(CASES)
    if "clean" in names:
        names = ["clean", *[n for n in names if n != "clean"]]
    baseline: list[tuple[str, ...]] | None = None
    outcomes = []
    for name in names:
        study = build_case(name, base, extra, root)
        outcome = run_case(name, study, root, baseline, analyze=not args.no_analyze)
        if name == "clean" and outcome.analyze_code == 0:
            baseline = _grades(root / name / "out")
        outcomes.append(outcome)
        print(f"{outcome.case:34s} inspect {outcome.inspect_code}  analyze {outcome.analyze_code}  "
              f"{outcome.verdict:10s} {outcome.message}", flush=True)
    with (root / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "inspect_exit", "analyze_exit", "message", "verdict"])
        for o in outcomes:
            writer.writerow([o.case, o.inspect_code, o.analyze_code, o.message, o.verdict])
    violations = [o for o in outcomes if o.verdict != "ok"]
    print(f"{len(outcomes) - len(violations)} of {len(outcomes)} cases kept the contract; results in {root / 'results.csv'}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
