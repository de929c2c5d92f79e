"""Which studies a batch finds: one per StudyInstanceUID whatever the folders, or the rows of a cohort CSV."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers.batch import copy_series, key_of, make_study, series_folder, write_csv

from modic.batch import discover, read_cohort_csv
from modic.errors import UsageError
from modic.io.study import load_study, load_study_index
from modic.report.privacy import study_key


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Study A as exported; B split over two unrelated folders; C and D mixed in one folder."""
    base = tmp_path_factory.mktemp("discovery")
    studies = {name: make_study(seed, base / "generated" / name) for name, seed in zip("ABCD", (21, 22, 23, 24))}
    root = base / "root"
    for name in ("SAG_T1", "SAG_T2"):
        copy_series(series_folder(studies["A"], name), root / "patient_a" / name)
    copy_series(series_folder(studies["B"], "SAG_T1"), root / "disk1" / "b")
    copy_series(series_folder(studies["B"], "SAG_T2"), root / "disk2" / "nested" / "deeper")
    for name in ("C", "D"):
        for series in ("SAG_T1", "SAG_T2"):
            copy_series(series_folder(studies[name], series), root / "mixed", prefix=f"{name}_{series}_")
    (root / "mixed" / "notes.txt").write_text("not DICOM", encoding="utf-8")
    keys = {name: key_of(study / "dicom") for name, study in studies.items()}
    return SimpleNamespace(base=base, root=root, studies=studies, keys=keys)


def test_one_source_per_study_uid_whatever_the_layout(cohort: SimpleNamespace) -> None:
    sources = discover(cohort.root)
    assert sorted(s.key for s in sources) == sorted(cohort.keys.values())
    by_key = {s.key: s for s in sources}
    split = by_key[cohort.keys["B"]]
    assert split.index is not None and len(split.index.series) == 2
    assert "2 folder(s)" in split.label
    for name in ("C", "D"):
        mixed = by_key[cohort.keys[name]]
        assert mixed.index is not None and len(mixed.index.series) == 2
        assert {Path(str(ds.filename)).name.split("_")[0] for s in mixed.index.series for ds in s.instances} == {name}
    assert all(s.source_id == s.key and s.kind == "dicom" for s in sources)


def test_labels_carry_no_identifiers(cohort: SimpleNamespace) -> None:
    for source in discover(cohort.root):
        assert source.index is not None
        for secret in (source.index.study_uid, str(cohort.root), "patient_a", "mixed", "disk"):
            assert secret not in source.label
        assert source.index.study_uid in source.private


def test_split_study_loads_from_its_index_like_a_folder(cohort: SimpleNamespace) -> None:
    source = next(s for s in discover(cohort.root) if s.key == cohort.keys["B"])
    assert source.index is not None
    from_index = load_study_index(source.index)
    from_folder = load_study(cohort.studies["B"] / "dicom")
    assert study_key(from_index) == source.key
    assert from_index.t1 is not None and from_folder.t1 is not None
    assert from_index.t2 is not None and from_folder.t2 is not None
    np.testing.assert_array_equal(from_index.t1.array, from_folder.t1.array)
    np.testing.assert_array_equal(from_index.t2.array, from_folder.t2.array)
    assert from_index.series["t2"].series_uid == from_folder.series["t2"].series_uid
    assert from_index.decisions[0]["event"] == "index"


def test_cohort_csv_of_nifti_pairs_and_folders(cohort: SimpleNamespace) -> None:
    a, b = cohort.studies["A"], cohort.studies["B"]
    listing = write_csv(
        cohort.base / "cohort.csv",
        [
            {"id": "first", "t1": "generated/A/nifti/t1.nii.gz", "t2": "generated/A/nifti/t2.nii.gz", "study": ""},
            {"id": "", "t1": str(b / "nifti" / "t1.nii.gz"), "t2": "", "study": ""},
            {"id": "folder", "t1": "", "t2": "", "study": "root/mixed"},
            {"id": "gone", "t1": "", "t2": "", "study": "root/missing"},
            {"id": "", "t1": "", "t2": "", "study": ""},
        ],
        ["id", "t1", "t2", "study"],
    )
    sources = read_cohort_csv(listing)
    assert [s.kind for s in sources] == ["files", "files", "dicom", "dicom", "invalid"]
    pair, single = sources[0], sources[1]
    assert pair.t1 == (a / "nifti" / "t1.nii.gz").resolve() and pair.t2 == (a / "nifti" / "t2.nii.gz").resolve()
    assert single.t2 is None and single.key is None
    assert pair.label == "csv line 2: t1+t2 file(s)" and single.label == "csv line 3: t1 file(s)"
    assert {sources[2].key, sources[3].key} == {cohort.keys["C"], cohort.keys["D"]}
    assert sources[2].label.startswith("csv line 4 study 1/2: dicom study, 2 series")
    assert "missing" in (sources[4].error or "") and sources[4].label == "csv line 5: unusable row"
    assert len({s.source_id for s in sources}) == len(sources)
    assert read_cohort_csv(listing)[0].source_id == pair.source_id, "source ids must be stable across reads"
    assert discover(listing)[0].source_id == pair.source_id


def test_cohort_csv_errors_name_the_problem(cohort: SimpleNamespace) -> None:
    wrong = write_csv(cohort.base / "wrong.csv", [{"path": "x"}], ["path"])
    with pytest.raises(UsageError, match=r"columns \['path'\].*'study'.*'t1'/'t2'"):
        read_cohort_csv(wrong)
    twice = write_csv(cohort.base / "twice.csv", [{"id": "x", "t1": "a.nii"}, {"id": "x", "t1": "b.nii"}], ["id", "t1"])
    with pytest.raises(UsageError, match="id 'x' appears on lines 2 and 3"):
        read_cohort_csv(twice)
    both = write_csv(cohort.base / "both.csv", [{"study": "root", "t1": "a.nii"}], ["study", "t1"])
    assert "both a study folder and T1/T2 files" in (read_cohort_csv(both)[0].error or "")
    with pytest.raises(UsageError, match="neither a folder nor a .csv"):
        discover(cohort.base / "generated" / "A" / "truth.json")
