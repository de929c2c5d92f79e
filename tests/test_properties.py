"""Property-based robustness (hypothesis): damaged headers never cause an internal error or a hang.

Random header mutations of small DICOM studies: geometry tags deleted or
set to odd raw values, SeriesDescription, TR/TE, pixel spacing and rescale
altered, the transfer syntax marker changed without re-encoding, files
truncated. ``modic inspect`` (and, for a few examples, ``modic analyze``)
must either succeed with complete output or fail with one ``modic: error:``
line and exit 1 or 2, never print "internal error" or a traceback, and
never hang (pytest-timeout). Examples are derandomized so CI runs are stable.
"""

from __future__ import annotations

import itertools
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_file_meta_info
from pydicom.tag import Tag

from modic.atomic import TEMP_PREFIX
from helpers.bad_input import Result, copy_series, run_cli, synthetic_source
from helpers.io import write

GEOMETRY = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices")
HEADER = (
    "SeriesDescription", "ProtocolName", "RepetitionTime", "EchoTime", "InversionTime", "ScanningSequence",
    "ScanOptions", "ImageType", "Modality", "SOPClassUID", "SeriesNumber", "RescaleSlope", "RescaleIntercept",
    "Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames",
    "SpecificCharacterSet", "FrameOfReferenceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID",
    "PatientID",
)
ODD_VALUES = (
    b"", b"0", b"-1", b"NaN", b"inf", b"-inf", b"1e308", b"abc", b"0\\0", b"1\\1", b"1\\0\\0\\0\\1\\0",
    b"0\\0\\0\\0\\0\\0", b"../../etc", b"\xff\xfe\x80\x1b[31m", b"T1 T2 STIR", b"\\\\\\", b"1.2.3.4.5", b"x" * 70,
)
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2",  # implicit VR little endian: the body is explicit, so it reads as garbage
    "1.2.840.10008.1.2.2",  # explicit big endian
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.5",  # RLE lossless, but the pixel data is native
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.90",  # JPEG 2000
    "1.2.3.4.5.6",  # not a transfer syntax
)


ORDER = {"delete": 0, "raw": 0, "syntax": 1, "truncate": 2}
"""Header edits first: a file whose transfer syntax marker changed or that was cut cannot be edited any more."""


@dataclass(frozen=True)
class Mutation:
    """One change to some files of a series: ``kind`` is delete, raw, syntax or truncate."""

    kind: str
    files: str  # "all", "first" or "middle"
    keyword: str = ""
    value: bytes = b""
    fraction: float = 1.0

    def apply(self, folder: Path) -> None:
        paths = sorted(folder.glob("*.dcm"))
        chosen = {"all": paths, "first": paths[:1], "middle": paths[len(paths) // 2 : len(paths) // 2 + 1]}[self.files]
        for path in chosen:
            if self.kind == "truncate":
                data = path.read_bytes()
                path.write_bytes(data[: int(len(data) * self.fraction)])
            elif self.kind == "syntax":
                set_transfer_syntax(path, self.value.decode())
            else:
                edit_raw(path, Tag(tag_for_keyword(self.keyword)), None if self.kind == "delete" else self.value)


def edit_raw(path: Path, tag: Tag, value: bytes | None) -> None:
    """Delete ``tag`` (``value`` None) or store ``value`` as its raw bytes, unvalidated.

    A file an earlier mutation made unwritable for pydicom (e.g. a garbage
    SpecificCharacterSet) is left as it is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the odd values it is asked to write
        try:
            ds = pydicom.dcmread(path, force=True)
            if value is None:
                ds.pop(tag, None)
            else:
                padded = value + (b" " if len(value) % 2 else b"")
                ds._dict[tag] = RawDataElement(tag, dictionary_VR(tag), len(padded), padded, 0, False, True)
            buffer = DicomBytesIO()
            ds.save_as(buffer, enforce_file_format=True)
        except Exception:  # noqa: BLE001 - pydicom refuses to rewrite some damaged files; keep them as they are
            return
    path.write_bytes(buffer.getvalue())


def set_transfer_syntax(path: Path, uid: str) -> None:
    """Rewrite the file meta with ``uid`` as TransferSyntaxUID, keeping the (explicit little endian) body bytes."""
    data = path.read_bytes()
    group_length = int.from_bytes(data[140:144], "little")
    body = data[144 + group_length :]
    meta = read_file_meta_info(path)
    meta.TransferSyntaxUID = uid
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, meta, enforce_standard=True)
    path.write_bytes(data[:132] + buffer.getvalue() + body)


def mutations(keywords: tuple[str, ...]) -> st.SearchStrategy[Mutation]:
    files = st.sampled_from(("all", "first", "middle"))
    return st.one_of(
        st.builds(Mutation, kind=st.just("delete"), files=files, keyword=st.sampled_from(keywords)),
        st.builds(
            Mutation, kind=st.just("raw"), files=files, keyword=st.sampled_from(keywords),
            value=st.one_of(st.sampled_from(ODD_VALUES), st.binary(max_size=24)),
        ),
        st.builds(Mutation, kind=st.just("syntax"), files=files,
                  value=st.sampled_from(TRANSFER_SYNTAXES).map(str.encode)),
        st.builds(Mutation, kind=st.just("truncate"), files=files, fraction=st.floats(0.0, 0.99)),
    )


def check_outcome(result: Result, *, out: Path | None = None) -> None:
    """Success, or one clean error line with exit 1 or 2; never an internal error or a traceback."""
    assert "internal error" not in result.err, result.err
    assert "Traceback" not in result.err + result.out
    assert result.code in (0, 1, 2), result
    if result.code != 0:
        assert len(result.error_lines) == 1, result.err
        if out is not None:
            assert not out.exists()
    if out is not None:
        assert not any(p.name.startswith(TEMP_PREFIX) for p in out.parent.iterdir())


_counter = itertools.count()


@pytest.fixture(scope="module")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("properties_small")
    write(root / "t1", "t1", 3)
    write(root / "t2", "t2", 4)
    return root


@pytest.mark.timeout(600)
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(("t1", "t2")), mutations(GEOMETRY + HEADER)), min_size=1, max_size=3
    )
)
def test_inspect_survives_damaged_headers(
    small_study: Path, tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, Mutation]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    study = Path(shutil.copytree(small_study, tmp_path_factory.getbasetemp() / f"inspect_{next(_counter)}"))
    for series, mutation in sorted(changes, key=lambda change: ORDER[change[1].kind]):
        mutation.apply(study / series)
    result = run_cli(capsys, ["inspect", study])
    check_outcome(result)
    if result.code == 0:
        assert "Chosen T1:" in result.out and "Chosen T2:" in result.out
    json_result = run_cli(capsys, ["inspect", study, "--json"])
    check_outcome(json_result)
    assert json_result.code == result.code
    if json_result.code == 0:
        json.loads(json_result.out)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = synthetic_source(tmp_path_factory)
    return copy_series(source, tmp_path_factory.mktemp("properties_synthetic") / "study", ["t1", "t2"])


ANALYZE_KEYWORDS = ("SeriesDescription", "RepetitionTime", "EchoTime", "RescaleSlope", "RescaleIntercept",
                    "PixelSpacing", "ImagePositionPatient", "SliceThickness")


@pytest.mark.timeout(600)
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(series=st.sampled_from(("t1", "t2")), mutation=mutations(ANALYZE_KEYWORDS))
def test_analyze_survives_damaged_headers(
    synthetic: Path, tmp_path_factory: pytest.TempPathFactory, series: str, mutation: Mutation,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path_factory.getbasetemp() / f"analyze_{next(_counter)}"
    study = Path(shutil.copytree(synthetic, work / "study"))
    mutation.apply(study / series)
    out = work / "out"
    result = run_cli(capsys, ["analyze", study, "-o", out, "--device", "cpu", "--no-dicom"])
    check_outcome(result, out=out)
    if result.code == 0:
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        assert report["schema"] == "modic-report"
        for name in ("levels.csv", "report.html", "segmentation.nii.gz", "endplates.nii.gz"):
            assert (out / name).is_file(), name
