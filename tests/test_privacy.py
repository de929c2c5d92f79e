"""Patient privacy of ``modic analyze``: no identifier in any non-DICOM output, file name or CLI output by default.

A tiny synthetic study carries distinctive identifiers (patient name, ID,
birth date, accession number, study date, institution, referring physician
and every UID); the patient name is also in the input folder's name and in
one file name. Every byte of every output except the DICOM SEG/SR
(decompressed where the file is gzip or a PNG text chunk) and everything the
command printed is searched for them. ``--keep-identifiers`` must put them
into report.json. SEG and SR copy the patient module of the source by
design (docs/privacy.md): the test pins that too, so the documentation stays true.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest

from helpers.bad_input import assert_no_temporaries
from modic.synth import generate_study, write_study

pytestmark = pytest.mark.timeout(300)

PATIENT_NAME = "ZZTESTNAME^QUINCY"
PATIENT_ID = "PID-998877"
BIRTH_DATE = "19510313"
STUDY_DATE = "20230917"
ACCESSION = "ACCZZ4455"
STUDY_UID = "1.2.826.0.1.3680043.10.1543.424242.998877"
INSTITUTION = "ZZQUINCY MEMORIAL"
REFERRER = "ZZREFERRER^WHO"
FOLDER = "ZZTESTNAME_QUINCY PID-998877 study"
DICOM_OUTPUTS = {"seg.dcm", "sr.dcm"}


def identifying_config() -> dict:
    """``tiny`` with identifiers that must not leak (merged key by key over its ``patient`` section)."""
    return {
        "extends": "tiny",
        "patient": {
            "name": PATIENT_NAME,
            "id": PATIENT_ID,
            "birth_date": [BIRTH_DATE, BIRTH_DATE],
            "study_date": [STUDY_DATE, STUDY_DATE],
            "accession_number": ACCESSION,
            "study_uid": STUDY_UID,
            "institution": INSTITUTION,
            "referring_physician": REFERRER,
        },
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The synthetic study written as DICOM, with its identifiers and UIDs."""
    root = tmp_path_factory.mktemp("privacy")
    synthetic = generate_study(seed=21, config=identifying_config(), modic="L5 superior:2")
    write_study(synthetic, root / "written", formats=("dicom", "nifti"))
    folder = root / FOLDER
    (root / "written" / "dicom").rename(folder)
    nifti = root / "ZZTESTNAME QUINCY nifti"
    nifti.mkdir()
    for role in ("t1", "t2"):
        (root / "written" / "nifti" / f"{role}.nii.gz").rename(nifti / f"ZZTESTNAME_QUINCY_{role}.nii.gz")
    files = sorted(folder.rglob("*.dcm"))
    files[0].rename(files[0].with_name(f"ZZTESTNAME_QUINCY_{files[0].name}"))
    uids: set[str] = set()
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert str(ds.PatientName) == PATIENT_NAME and ds.PatientID == PATIENT_ID
        uids.update(str(ds[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                               "FrameOfReferenceUID"))
    assert STUDY_UID in uids
    tokens = {
        "PatientName": PATIENT_NAME,
        "name (family)": "ZZTESTNAME",
        "name (given)": "QUINCY",
        "PatientID": PATIENT_ID,
        "PatientID digits": "998877",
        "PatientBirthDate": BIRTH_DATE,
        "birth date (ISO)": "1951-03-13",
        "StudyDate": STUDY_DATE,
        "study date (ISO)": "2023-09-17",
        "AccessionNumber": ACCESSION,
        "InstitutionName": INSTITUTION,
        "ReferringPhysicianName": "ZZREFERRER",
        **{f"UID {uid}": uid for uid in sorted(uids)},
    }
    return SimpleNamespace(root=root, folder=folder, nifti=nifti, tokens=tokens)


def readable_bytes(path: Path) -> list[bytes]:
    """The bytes of ``path`` as stored plus, for gzip files and PNG text chunks, decompressed."""
    data = path.read_bytes()
    parts = [data]
    if data[:2] == b"\x1f\x8b":
        parts.append(gzip.decompress(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        offset = 8
        while offset < len(data):
            (length,) = struct.unpack(">I", data[offset : offset + 4])
            kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
            if kind == b"zTXt":
                parts.append(zlib.decompress(body[body.index(b"\0") + 2 :]))
            elif kind == b"iTXt":
                keyword, _, rest = body.partition(b"\0")
                compressed = rest[0] == 1
                text = rest[2:].split(b"\0", 2)[-1]
                parts.append(keyword + (zlib.decompress(text) if compressed else text))
            offset += 12 + length
    return parts


def leaks(tokens: dict[str, str], haystacks: dict[str, list[bytes]]) -> list[str]:
    found = []
    for where, blobs in haystacks.items():
        for label, token in tokens.items():
            needle = token.encode("utf-8")
            if any(needle in blob or needle.lower() in blob.lower() for blob in blobs):
                found.append(f"{label} ({token}) in {where}")
    return found


@pytest.fixture(scope="module")
def default_run(study: SimpleNamespace) -> SimpleNamespace:
    return _analyze(study, study.root / "results" / "default")


def _analyze(study: SimpleNamespace, out: Path, *extra: str, inputs: list[str] | None = None) -> SimpleNamespace:
    """``modic analyze`` in-process, its terminal output captured (capsys is function-scoped, this is not)."""
    from modic.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["analyze", *(inputs or [str(study.folder)]), "-o", str(out), "--device", "cpu", *extra])
    return SimpleNamespace(code=code, out=out, stdout=stdout.getvalue(), stderr=stderr.getvalue())


def non_dicom_outputs(run: SimpleNamespace) -> dict[str, list[bytes]]:
    """Everything a run wrote or printed, except seg.dcm and sr.dcm, as bytes to search."""
    files = sorted(p for p in run.out.rglob("*") if p.is_file())
    haystacks = {str(p.relative_to(run.out)): readable_bytes(p) for p in files if p.name not in DICOM_OUTPUTS}
    haystacks["output file names"] = ["\n".join(str(p.relative_to(run.out)) for p in files).encode()]
    haystacks["stdout"] = [run.stdout.encode()]
    haystacks["stderr"] = [run.stderr.encode()]
    return haystacks


def test_default_outputs_hold_no_identifier(study: SimpleNamespace, default_run: SimpleNamespace) -> None:
    assert default_run.code == 0, default_run.stderr
    names = {p.name for p in default_run.out.iterdir()}
    assert {"report.json", "levels.csv", "report.html", "sagittal_t1.png", "segmentation.nii.gz"} <= names
    assert DICOM_OUTPUTS <= names
    assert leaks(study.tokens, non_dicom_outputs(default_run)) == []
    assert_no_temporaries(default_run.out.parent)


def test_file_input_named_after_the_patient(study: SimpleNamespace) -> None:
    t1, t2 = (str(study.nifti / f"ZZTESTNAME_QUINCY_{role}.nii.gz") for role in ("t1", "t2"))
    run = _analyze(study, study.root / "results" / "nifti", inputs=["--t1", t1, "--t2", t2])
    assert run.code == 0, run.stderr
    report = json.loads((run.out / "report.json").read_text(encoding="utf-8"))
    assert report["series"]["t1"]["source"] == "nifti" and report["series"]["t1"]["description"] == "<input>"
    assert leaks(study.tokens, non_dicom_outputs(run)) == []


def test_outputs_are_keyed_by_a_stable_pseudonym(study: SimpleNamespace, default_run: SimpleNamespace) -> None:
    report = json.loads((default_run.out / "report.json").read_text(encoding="utf-8"))
    key = report["study"]["key"]
    assert set(report["study"]) == {"key", "single_slice"}
    assert len(key) == 16 and int(key, 16) >= 0
    assert f"study {key}" in default_run.stdout
    levels = (default_run.out / "levels.csv").read_text(encoding="utf-8").splitlines()
    assert all(line.startswith(key) for line in levels[1:])


def test_dicom_seg_and_sr_copy_the_patient_module(study: SimpleNamespace, default_run: SimpleNamespace) -> None:
    """Documented in docs/privacy.md: seg.dcm and sr.dcm are identifiable and must be handled as such.

    Also the positive control of the byte search above: it finds the identifiers where they are.
    """
    for name in DICOM_OUTPUTS:
        ds = pydicom.dcmread(default_run.out / name, stop_before_pixels=True)
        assert str(ds.PatientName) == PATIENT_NAME and ds.PatientID == PATIENT_ID
        assert ds.StudyInstanceUID == STUDY_UID
        found = leaks(study.tokens, {name: readable_bytes(default_run.out / name)})
        assert any(item.startswith("PatientID ") for item in found) and any(STUDY_UID in item for item in found)


def test_keep_identifiers_puts_them_into_the_report(study: SimpleNamespace) -> None:
    run = _analyze(study, study.root / "results" / "kept", "--keep-identifiers", "--no-dicom")
    assert run.code == 0, run.stderr
    report = json.loads((run.out / "report.json").read_text(encoding="utf-8"))
    kept = report["study"]
    assert kept["PatientName"] == PATIENT_NAME
    assert kept["PatientID"] == PATIENT_ID
    assert kept["PatientBirthDate"] == BIRTH_DATE
    assert kept["AccessionNumber"] == ACCESSION
    assert kept["study_instance_uid"] == STUDY_UID
    assert report["series"]["t1"]["series_uid"]
    html = (run.out / "report.html").read_text(encoding="utf-8")
    assert PATIENT_ID in html and "ZZTESTNAME" in html
