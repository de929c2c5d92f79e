"""Discovery: PACS-like folders are grouped by study and series UID, bad files are recorded, never fatal."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pydicom
import pytest

from modic.errors import InputError
from modic.io.dicom_scan import scan_folder, scan_studies
from helpers.io import OTHER_STUDY_UID, STUDY_UID, pacs_export, write


@pytest.fixture()
def two_series(tmp_path: Path) -> Path:
    source = tmp_path / "written"
    write(source / "t1", "t1", 3)
    write(source / "t2", "t2", 4)
    return source


def test_shuffled_renamed_nested_files_group_by_uid_not_folder(tmp_path: Path, two_series: Path) -> None:
    files = sorted(p for p in two_series.rglob("*") if p.is_file())
    random.Random(7).shuffle(files)
    root = tmp_path / "export"
    for index, path in enumerate(files):
        # Scatter both series over folders with no relation to the series and names without extension.
        folder = root / f"d{index % 3}" / f"sub{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / f"{index:05x}")

    studies = scan_studies(root)

    assert [s.study_uid for s in studies] == [STUDY_UID]
    series = studies[0].series
    assert [s.number for s in series] == [3, 4]
    assert [s.description for s in series] == ["t1_tse_sag", "t2_tse_sag"]
    assert [len(s.instances) for s in series] == [8, 8]
    assert all("PixelData" not in ds for s in series for ds in s.instances)
    assert {p.parent.name for p in series[0].paths} == {"sub0", "sub1"}


def test_pacs_export_with_dicomdir_junk_corrupt_files_and_second_study(tmp_path: Path, two_series: Path) -> None:
    write(two_series / "other", "t1", 7, study_uid=OTHER_STUDY_UID)
    root = pacs_export(two_series, tmp_path / "export")
    sample = next(p for p in root.rglob("IM*") if p.is_file())
    (root / "README.TXT").write_text("exported by PACS\n")
    (root / "garbage.dcm").write_bytes(random.Random(1).randbytes(4000))
    (root / "empty").write_bytes(b"")
    data = sample.read_bytes()
    (root / "truncated_pixels").write_bytes(data[: len(data) - 300])
    (root / "truncated_header").write_bytes(data[:200])
    fake = bytearray(random.Random(2).randbytes(600))
    fake[128:132] = b"DICM"
    (root / "fake_preamble").write_bytes(bytes(fake))

    scan = scan_folder(root)

    assert {s.study_uid for s in scan.studies} == {STUDY_UID, OTHER_STUDY_UID}
    main = next(s for s in scan.studies if s.study_uid == STUDY_UID)
    assert [(s.number, len(s.instances)) for s in main.series] == [(3, 8), (4, 8)]
    other = next(s for s in scan.studies if s.study_uid == OTHER_STUDY_UID)
    assert [(s.number, len(s.instances)) for s in other.series] == [(7, 8)]
    kinds = {Path(item.path).name: item.kind for item in scan.skipped}
    assert kinds["DICOMDIR"] == "dicomdir"
    assert kinds["README.TXT"] == "not_dicom"
    assert kinds["garbage.dcm"] == "not_dicom"
    assert kinds["empty"] == "not_dicom"
    assert kinds["truncated_pixels"] == "corrupt"
    assert kinds["truncated_header"] == "corrupt"
    assert kinds["fake_preamble"] == "corrupt"
    reasons = {Path(item.path).name: item.reason for item in scan.skipped}
    assert "truncated" in reasons["truncated_pixels"]
    assert scan.files_seen == 24 + 7


def test_symlink_loop_and_duplicate_copies_are_harmless(tmp_path: Path, two_series: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(two_series, root / "a")
    os.symlink(root, root / "a" / "loop")  # a folder link back to the root
    shutil.copytree(two_series / "t1", root / "copy_of_t1")  # same SOP instances again

    scan = scan_folder(root)

    series = scan.studies[0].series
    assert [len(s.instances) for s in series] == [8, 8]
    duplicates = [item for item in scan.skipped if item.kind == "duplicate"]
    assert len(duplicates) == 8
    assert all("same SOPInstanceUID" in item.reason for item in duplicates)


def test_missing_series_uid_is_recorded_as_corrupt(tmp_path: Path) -> None:
    paths = write(tmp_path / "s", "t1", 3)
    ds = pydicom.dcmread(paths[0])
    del ds.SeriesInstanceUID
    ds.save_as(paths[0], enforce_file_format=True)

    scan = scan_folder(tmp_path)

    assert len(scan.studies[0].series[0].instances) == 7
    [item] = [i for i in scan.skipped if i.kind == "corrupt"]
    assert "SeriesInstanceUID" in item.reason


def test_missing_or_file_root_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        scan_folder(tmp_path / "f")
