"""Series classification and the choice of the sagittal T1 and T2, with the decision log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from modic.errors import SeriesSelectionError, UsageError
from modic.io.dicom_scan import StudyIndex, scan_folder
from modic.io.series_select import classify_weighting, plane_of, select_series
from helpers.io import edit, new_instance_uids, volume, write

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def study_of(root: Path) -> StudyIndex:
    [study] = scan_folder(root).studies
    return study


def series_entries(decisions: list[dict]) -> dict[int, dict]:
    return {d["series_number"]: d for d in decisions if d["event"] == "series"}


@pytest.fixture()
def mixed_study(tmp_path: Path) -> Path:
    """T1, T2, STIR, T2 fat-sat, axial T2, localizers, derived and secondary-capture series."""
    root = tmp_path / "study"
    write(
        root / "s1",
        "t2",
        1,
        vol=volume((16, 16, 3)),
        description="AAHead_Scout",
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
    )
    uid = "1.2.826.0.1.3680043.10.1543.99.77"
    parts = [
        write(root / f"s2{plane}", "t2", 2, vol=volume((16, 16, 3), plane=plane), description="tri", series_uid=uid)
        for plane in ("sagittal", "coronal", "axial")
    ]
    for index, paths in enumerate(parts[1:]):
        new_instance_uids(paths, tag=f"loc{index}")
    write(root / "s3", "t1", 3)
    write(root / "s4", "t2", 4)
    write(root / "s5", "stir", 5)
    write(root / "s6", "t2", 6, description="t2_tse_sag", scan_options=("FS",))
    write(root / "s7", "t2", 7, vol=volume((16, 16, 5), plane="axial"), description="t2_tse_tra")
    write(root / "s8", "t1", 8, description="t1_tse_sag_MPR", image_type=("DERIVED", "SECONDARY", "MPR"))
    sc = write(root / "s9", "t2", 9, description="t2 screenshot")
    for path in sc:

        def capture(ds: pydicom.Dataset) -> None:
            ds.SOPClassUID = SECONDARY_CAPTURE
            ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE

        edit(path, capture)
    return root


def test_mixed_study_choice_and_reasons(mixed_study: Path) -> None:
    selection = select_series(study_of(mixed_study))

    assert selection.t1 is not None and selection.t1.number == 3
    assert selection.t2 is not None and selection.t2.number == 4
    entries = series_entries(selection.decisions)
    assert entries[3]["status"] == "accepted" and entries[3]["role"] == "t1"
    assert entries[4]["status"] == "accepted" and entries[4]["role"] == "t2"
    reasons = {n: " ".join(e["reasons"]) for n, e in entries.items()}
    assert "localizer (ImageType LOCALIZER)" in reasons[1]
    assert "localizer (3 slice orientations in one series: axial, coronal, sagittal)" in reasons[2]
    assert "weighting STIR" in reasons[5]
    assert entries[5]["weighting"] == "STIR"
    assert "weighting T2_FS" in reasons[6]
    assert any("ScanOptions FS" in w for w in entries[6]["warnings"])
    assert "plane is axial" in reasons[7]
    assert "derived image (ImageType DERIVED/SECONDARY/MPR)" in reasons[8]
    assert "secondary capture" in reasons[9]
    assert all(e["status"] == "rejected" for n, e in entries.items() if n not in (3, 4))
    json.dumps(selection.decisions)
    choices = {d["role"]: d for d in selection.decisions if d["event"] == "choice"}
    assert choices["t1"]["series_number"] == 3 and choices["t1"]["how"] == "automatic"


def test_physics_wins_over_the_description(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3, description="t2_tse_sag")  # TR 550 / TE 11
    write(tmp_path / "b", "t2", 4, description="T1 SAG")  # TR 3500 / TE 95

    selection = select_series(study_of(tmp_path))

    assert selection.t1.number == 3 and selection.t2.number == 4  # type: ignore[union-attr]
    entries = series_entries(selection.decisions)
    assert entries[3]["weighting"] == "T1" and entries[3]["description_weighting"] == "T2"
    assert any(
        "description suggests T2 but TR 550 ms / TE 11 ms is T1-weighted: physics wins" in w
        for w in entries[3]["warnings"]
    )
    assert entries[4]["weighting"] == "T2" and entries[4]["weighting_source"] == "physics"


@pytest.mark.parametrize(
    ("description", "tr", "te", "ti", "sequence", "options", "expected"),
    [
        ("t1_tse_sag", 600, 10, None, ["SE"], [], "T1"),
        ("t2_tse_sag", 3000, 100, None, ["SE"], [], "T2"),
        ("Sag T1 FLAIR", 2200, 20, 860, ["SE", "IR"], [], "T1"),
        ("T2 SAG", 4000, 60, 150, ["SE", "IR"], [], "STIR"),
        ("t2_tirm_sag", 4000, 60, None, ["SE"], [], "STIR"),
        ("SAG STIR", None, None, None, [], [], "STIR"),
        ("T2 SPAIR sag", 3500, 90, None, ["SE"], [], "T2_FS"),
        ("t2_tse_dixon_sag_W", 3500, 90, None, ["SE"], [], "T2_FS"),
        ("sag t2", 3500, 90, None, ["SE"], ["SFS"], "T2_FS"),
        ("T1 FS post", 600, 10, None, ["SE"], ["FS"], "T1_FS"),
        ("pd_tse_sag", 2500, 25, None, ["SE"], [], "PD"),
        ("t2_me2d_medic", 700, 20, None, ["GR"], [], "T2STAR"),
        ("sag t2 gre", 500, 15, None, ["GR"], [], "T2"),
        ("t2_flair_sag", 9000, 90, 2500, ["SE", "IR"], [], "FLAIR"),
        ("series 12", 1500, 50, None, ["SE"], [], "unknown"),
    ],
)
def test_weighting_from_description_and_physics(description, tr, te, ti, sequence, options, expected) -> None:  # type: ignore[no-untyped-def]
    weighting, *_ = classify_weighting(
        description=description,
        repetition_time=tr,
        echo_time=te,
        inversion_time=ti,
        scanning_sequence=sequence,
        scan_options=options,
    )
    assert weighting == expected


@pytest.mark.parametrize(
    ("normal", "expected"),
    [
        ([1, 0, 0], "sagittal"),
        ([0, 1, 0], "coronal"),
        ([0, 0, -1], "axial"),
        ([1, 0.5, 0], "sagittal"),
        ([1, 1, 0], "oblique"),
    ],
)
def test_plane_from_slice_normal(normal: list[float], expected: str) -> None:
    assert plane_of(normal, tolerance_deg=30)[0] == expected


def test_tie_breaks_slices_spacing_repeat_midline(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3, vol=volume((16, 16, 8)))
    write(tmp_path / "b", "t1", 5, vol=volume((16, 16, 10), spacing=(0.8, 0.8, 3.0)))  # more slices: wins
    write(
        tmp_path / "c", "t1", 9, vol=volume((16, 16, 10), spacing=(0.8, 0.8, 3.0), origin=(80.0, -20.0, 30.0))
    )  # off midline
    write(tmp_path / "d", "t2", 4, vol=volume((16, 16, 8), spacing=(1.0, 1.0, 4.0)))
    write(tmp_path / "e", "t2", 6, vol=volume((16, 16, 8), spacing=(0.6, 0.6, 4.0)))  # finer: wins
    write(tmp_path / "f", "t2", 7, vol=volume((16, 16, 8), spacing=(1.0, 1.0, 4.0)))  # repeat of 4: beats 4

    selection = select_series(study_of(tmp_path))

    assert selection.t1.number == 5 and selection.t2.number == 6  # type: ignore[union-attr]
    reasons = {n: " ".join(e["reasons"]) for n, e in series_entries(selection.decisions).items()}
    assert "T1 candidate ranked 2 of 3" in reasons[3] and "fewer slices (8 vs 10)" in reasons[3]
    assert "ranked 3 of 3" in reasons[9] and "does not cover the midline" in reasons[9]
    assert "coarser pixel spacing (1x1 vs 0.6x0.6 mm)" in reasons[7]
    assert "ranked 2 of 3" in reasons[7] and "ranked 3 of 3" in reasons[4]


@pytest.mark.parametrize("shared", ["t2 a", "t2 b"])
def test_same_frame_of_reference_breaks_the_last_tie(tmp_path: Path, shared: str) -> None:
    frame, other_frame = "1.2.826.0.1.3680043.10.1543.99.500", "1.2.826.0.1.3680043.10.1543.99.501"
    write(tmp_path / "a", "t1", 3, frame=frame)
    write(tmp_path / "b", "t2", 4, frame=frame if shared == "t2 a" else other_frame, description="t2 a")
    write(
        tmp_path / "c",
        "t2",
        4,
        frame=frame if shared == "t2 b" else other_frame,
        description="t2 b",
        series_uid="1.2.826.0.1.3680043.10.1543.99.502",
    )

    selection = select_series(study_of(tmp_path))

    assert selection.t2.description == shared  # type: ignore[union-attr]
    assert not [d for d in selection.decisions if d["event"] == "frame_of_reference"]


def test_user_override_and_wrong_uids(mixed_study: Path) -> None:
    study = study_of(mixed_study)
    stir = next(s for s in study.series if s.number == 5)

    selection = select_series(study, t2_uid=stir.series_uid)

    assert selection.t2 is stir
    entry = series_entries(selection.decisions)[5]
    assert entry["status"] == "accepted" and "by the user" in entry["reasons"][0]
    assert any("weighting looks like STIR, not T2" in w for w in entry["warnings"])
    assert series_entries(selection.decisions)[4]["status"] == "rejected"

    with pytest.raises(SeriesSelectionError) as caught:
        select_series(study, t1_uid="1.2.3.999")
    message = str(caught.value)
    assert "t1_uid '1.2.3.999' is not a series of study" in message
    assert all(s.series_uid in message for s in study.series)

    with pytest.raises(UsageError, match="same series"):
        select_series(study, t1_uid=stir.series_uid, t2_uid=stir.series_uid)


def test_missing_t2_is_a_warning_and_missing_both_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3)
    selection = select_series(study_of(tmp_path))
    selection.require_any()
    [missing] = [d for d in selection.decisions if d["event"] == "missing"]
    assert missing["role"] == "t2" and missing["level"] == "warning"

    other = tmp_path / "only_axial"
    write(other, "t2", 7, vol=volume((16, 16, 5), plane="axial"), description="t2_tse_tra")
    write(other, "stir", 5, file_names=[f"stir{k}" for k in range(8)])
    selection = select_series(study_of(other))
    assert selection.t1 is None and selection.t2 is None
    with pytest.raises(SeriesSelectionError) as caught:
        selection.require_any()
    assert "#7 't2_tse_tra' axial T2" in str(caught.value) and "#5 't2_tirm_sag' sagittal STIR" in str(caught.value)


def test_broken_geometry_rejects_the_series_and_falls_back(tmp_path: Path) -> None:
    broken = write(tmp_path / "a", "t1", 9)
    broken[4].unlink()  # gap in the stack
    write(tmp_path / "b", "t1", 3)

    selection = select_series(study_of(tmp_path))

    assert selection.t1.number == 3  # type: ignore[union-attr]
    assert "non-uniform slice spacing" in series_entries(selection.decisions)[9]["reasons"][0]


def test_angled_axial_blocks_in_one_series_are_not_called_localizer(tmp_path: Path) -> None:
    from modic.io.volume import Volume

    uid = "1.2.826.0.1.3680043.10.1543.99.88"
    flat = volume((16, 16, 3), plane="axial")
    angle = np.deg2rad(12.0)
    tilt = np.eye(4)
    tilt[:3, :3] = [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    tilted = Volume(flat.array, tilt @ flat.affine)
    write(tmp_path / "a", "t2", 6, vol=flat, description="t2_tse_tra", series_uid=uid)
    second = write(tmp_path / "b", "t2", 6, vol=tilted, description="t2_tse_tra", series_uid=uid)
    new_instance_uids(second, tag="block2")
    write(tmp_path / "c", "t1", 3)

    selection = select_series(study_of(tmp_path))

    reasons = series_entries(selection.decisions)[6]["reasons"]
    assert reasons == ["2 slice blocks with different angulations in one series (axial); not one volume"]
