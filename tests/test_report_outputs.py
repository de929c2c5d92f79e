"""End to end: ``modic analyze`` on a tiny synthetic DICOM study writes every output, and each one is right.

One analysis (module fixture) feeds every test: report.json against its JSON
Schema, levels.csv, the DICOM SEG (geometry, references, masks against the
NIfTI label maps, dciodvfy), the DICOM SR (references, values against
report.json, dciodvfy, dsr2xml), report.html (rendered by headless Chromium,
no identifiers) and the PNG pictures.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.sr.codedict import codes

from modic import RESEARCH_NOTICE
from modic.atomic import MARKER_NAME
from modic.cli import main
from modic.io.study import load_study
from modic.levels.names import VERTEBRAE_CAUDAL_FIRST
from modic.report import dicom_sr, figures
from modic.report.dicom_seg import endplate_tracking_id, vertebra_code
from modic.report.json_report import read_report
from modic.report.writer import LABEL_MAPS
from modic.synth import generate_study, write_study

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 11
PLANTED = "L4 inferior:1,L5 superior:2"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("report_outputs")
    study = generate_study(seed=SEED, config="tiny", modic=PLANTED)
    write_study(study, root / "input", formats=("dicom",))
    out = root / "result"
    code = main(["-q", "analyze", str(root / "input" / "dicom"), "-o", str(out), "--device", "cpu"])
    assert code == 0
    images = load_study(root / "input" / "dicom")
    return SimpleNamespace(
        study=study,
        out=out,
        report=read_report(out / "report.json"),
        t1_headers=images.t1_source_headers,
        t1_series_uid=images.series["t1"].series_uid,
    )


def _label_map(out: Path, attribute: str) -> np.ndarray:
    name = next(file for file, attr in LABEL_MAPS.items() if attr == attribute)
    return np.asarray(nib.load(str(out / name)).dataobj)


def _endplates(report: dict) -> list[dict]:
    return [endplate for level in report["levels"] for endplate in level["endplates"]]


def test_analyze_writes_every_output(analysed: SimpleNamespace) -> None:
    names = {path.name for path in analysed.out.iterdir()}
    expected = {"report.json", "levels.csv", "report.html", "seg.dcm", "sr.dcm", "sagittal_t1.png", "sagittal_t2.png",
                MARKER_NAME, *LABEL_MAPS}
    assert expected <= names
    assert names - expected <= {"montage_t1.png"}
    assert analysed.report["levels"], "no level was graded on the synthetic study"


def test_report_json_follows_its_schema(analysed: SimpleNamespace) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO_ROOT / "docs" / "report.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(analysed.report)]
    assert errors == []
    discs = [level["disc"] for level in analysed.report["levels"]]
    assert all(d is not None and 0.05 < d["height_ratio"] < 0.6 and 0 < d["height_to_tallest_disc"] <= 1 for d in discs)
    assert all(d["signal"]["t1"] is not None and d["signal"]["t2"] is not None for d in discs)


def test_levels_csv_has_one_row_per_graded_endplate(analysed: SimpleNamespace) -> None:
    rows = list(csv.DictReader(io.StringIO((analysed.out / "levels.csv").read_text(encoding="utf-8"))))
    endplates = _endplates(analysed.report)
    assert [row["endplate"] for row in rows] == [e["endplate"] for e in endplates]
    for row, endplate in zip(rows, endplates, strict=True):
        assert int(row["modic_type"]) == endplate["modic_type"]
        assert float(row["confidence"]) == pytest.approx(endplate["confidence"])
        assert float(row["region_fraction"]) == pytest.approx(endplate["extent"]["region_fraction"])
    levels = {level["level"]: level for level in analysed.report["levels"]}
    for row in rows:
        disc = levels[row["level"]]["disc"]
        assert float(row["disc_height_ratio"]) == pytest.approx(disc["height_ratio"])
        assert float(row["disc_t2_ratio_median"]) == pytest.approx(disc["signal"]["t2"]["ratio_median"])


def test_seg_references_the_t1_series(analysed: SimpleNamespace) -> None:
    import highdicom as hd

    seg = hd.seg.segread(analysed.out / "seg.dcm")
    assert seg.StudyInstanceUID == analysed.t1_headers[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == analysed.t1_headers[0].FrameOfReferenceUID
    assert [item.SeriesInstanceUID for item in seg.ReferencedSeriesSequence] == [analysed.t1_series_uid]
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= {header.SOPInstanceUID for header in analysed.t1_headers}
    assert seg.SegmentationType == "BINARY"


def test_seg_segments_match_the_label_maps(analysed: SimpleNamespace) -> None:
    import highdicom as hd

    seg = hd.seg.segread(analysed.out / "seg.dcm")
    uids = [header.SOPInstanceUID for header in analysed.t1_headers]
    maps = {attribute: _label_map(analysed.out, attribute) for attribute in LABEL_MAPS.values()}
    endplates = {e["endplate"]: e["region"] for e in _endplates(analysed.report) if e["region"]}
    reference_labels = {name.split()[0]: region["reference_label"] for name, region in endplates.items()}
    seen: dict[str, set[int]] = {attribute: set() for attribute in maps}
    for item in seg.SegmentSequence:
        tracking = str(item.TrackingID)
        if tracking.endswith(" endplate"):
            attribute, value = "endplate_map", endplates[tracking.removesuffix(" endplate")]["label"]
        elif tracking.endswith(" reference marrow"):
            attribute, value = "reference_map", reference_labels[tracking.split()[0]]
        elif "-" in tracking:
            attribute, value = "disc_map", VERTEBRAE_CAUDAL_FIRST.index(tracking.split("-")[0])
        else:
            attribute, value = "vertebra_map", VERTEBRAE_CAUDAL_FIRST.index(tracking) + 1
        pixels = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=[int(item.SegmentNumber)],
            assert_missing_frames_are_empty=True,
        )[..., 0]
        expected = (maps[attribute] == value).transpose(2, 1, 0)
        assert pixels.shape == expected.shape
        assert np.array_equal(pixels.astype(bool), expected), f"segment {item.SegmentLabel!r} differs from the map"
        seen[attribute].add(value)
    for attribute in ("vertebra_map", "disc_map", "endplate_map", "reference_map"):
        assert seen[attribute] == set(np.unique(maps[attribute]).tolist()) - {0}, f"{attribute} not fully in the SEG"


def test_seg_codes_name_the_anatomy(analysed: SimpleNamespace) -> None:
    import highdicom as hd

    seg = hd.seg.segread(analysed.out / "seg.dcm")
    for item in seg.SegmentSequence:
        kind = item.SegmentedPropertyTypeCodeSequence[0]
        if str(item.TrackingID).endswith(("endplate", "reference marrow")):
            assert (kind.CodeValue, kind.CodingSchemeDesignator) == ("14016003", "SCT")
        elif "-" not in str(item.TrackingID):
            assert (kind.CodeValue, kind.CodingSchemeDesignator) == ("3572006", "SCT")
            region = item.AnatomicRegionSequence[0]
            assert region.CodeValue == vertebra_code(str(item.TrackingID)).value
        assert item.SegmentAlgorithmType == "AUTOMATIC"
        assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "modic"


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def test_seg_passes_dciodvfy(analysed: SimpleNamespace) -> None:
    assert _dciodvfy_errors(analysed.out / "seg.dcm") == []


def test_sr_passes_dciodvfy(analysed: SimpleNamespace) -> None:
    assert _dciodvfy_errors(analysed.out / "sr.dcm") == []


def test_sr_is_readable_by_dsr2xml(analysed: SimpleNamespace) -> None:
    if shutil.which("dsr2xml") is None:
        pytest.skip("dsr2xml (dcmtk) is not installed")
    result = subprocess.run(["dsr2xml", str(analysed.out / "sr.dcm")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '<report type="Comprehensive 3D SR">' in result.stdout
    assert "L5 superior endplate" in result.stdout or "L4 inferior endplate" in result.stdout


def test_sr_references_seg_and_t1(analysed: SimpleNamespace) -> None:
    import highdicom as hd

    sr = hd.sr.srread(analysed.out / "sr.dcm")
    seg = hd.seg.segread(analysed.out / "seg.dcm")
    evidence = {series for _, series in sr.get_evidence_series()}
    assert evidence == {analysed.t1_series_uid, seg.SeriesInstanceUID}
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    observers = sr.content.get_observer_contexts()
    assert [observer.observer_type.value for observer in observers] == [codes.DCM.Device.value]
    for group in sr.content.get_volumetric_roi_measurement_groups():
        reference = group.referenced_segment
        assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
        number = reference.referenced_segment_numbers[0]
        segment = seg.get_segment_description(number)
        assert segment.tracking_id == group.tracking_identifier
        assert segment.tracking_uid == group.tracking_uid


def test_sr_measurements_match_report_json(analysed: SimpleNamespace) -> None:
    import highdicom as hd

    sr = hd.sr.srread(analysed.out / "sr.dcm")
    groups = {
        group.tracking_identifier: group
        for group in [*sr.content.get_volumetric_roi_measurement_groups(), *sr.content.get_image_measurement_groups()]
    }
    endplates = _endplates(analysed.report)
    assert set(groups) == {endplate_tracking_id(e["endplate"]) for e in endplates}
    for endplate in endplates:
        group = groups[endplate_tracking_id(endplate["endplate"])]
        (evaluation,) = group.get_qualitative_evaluations()
        expected = dicom_sr.modic_type_code(endplate["modic_type"], endplate["mixed"])
        assert (evaluation.value.value, evaluation.value.scheme_designator) == (expected.value, "99MODIC")
        values = {item.name.value: (item.value, item.unit.value) for item in group.get_measurements()}
        t1 = endplate["signal"]["t1"]
        assert values[dicom_sr.REGION_FRACTION.value] == (pytest.approx(endplate["extent"]["region_fraction"]), "1")
        assert values[dicom_sr.HEIGHT_FRACTION.value] == (pytest.approx(endplate["extent"]["height_fraction"]), "1")
        assert values[dicom_sr.CONFIDENCE.value] == (pytest.approx(endplate["confidence"]), "1")
        if t1 is not None and t1["ratio_median"] is not None:
            assert values[dicom_sr.T1_RATIO.value] == (pytest.approx(t1["ratio_median"]), "1")
        vertebra, side = endplate["endplate"].split()
        (site,) = group.finding_sites
        assert site.value.value == vertebra_code(vertebra).value
        assert site.topographical_modifier.meaning.lower() == side


def test_html_renders_in_chromium(analysed: SimpleNamespace, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (analysed.out / "report.html").as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    dom = result.stdout
    assert 'id="level-table"' in dom, result.stderr[-2000:]
    assert RESEARCH_NOTICE in dom
    for level in analysed.report["levels"]:
        assert f'<td class="level" rowspan="{len(level["endplates"])}">{level["level"]}</td>' in dom
    assert dom.count("<img") >= 2


def test_html_is_self_contained(analysed: SimpleNamespace) -> None:
    html = (analysed.out / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", html, re.IGNORECASE)
    assert html.count('src="data:image/png;base64,') >= 2


def test_outputs_carry_no_planted_identifiers(analysed: SimpleNamespace) -> None:
    patient = analysed.study.patient
    identifiers = [patient.patient_name, patient.patient_id, patient.accession_number, patient.study_uid,
                   patient.birth_date]
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", (analysed.out / "report.html").read_text("utf-8"))
    for name, text in (("report.html", html), ("report.json", (analysed.out / "report.json").read_text("utf-8")),
                       ("levels.csv", (analysed.out / "levels.csv").read_text("utf-8"))):
        for identifier in identifiers:
            assert str(identifier) not in text, f"{name} contains the planted identifier {identifier!r}"


def test_dicom_outputs_copy_the_patient_module(analysed: SimpleNamespace) -> None:
    import pydicom

    patient = analysed.study.patient
    for name in ("seg.dcm", "sr.dcm"):
        ds = pydicom.dcmread(analysed.out / name, stop_before_pixels=True)
        assert str(ds.PatientID) == patient.patient_id
        assert ds.StudyInstanceUID == patient.study_uid


def test_figures_are_pngs_of_the_expected_size(analysed: SimpleNamespace) -> None:
    for name in ("sagittal_t1.png", "sagittal_t2.png"):
        with Image.open(analysed.out / name) as image:
            image.verify()
        with Image.open(analysed.out / name) as image:
            assert image.format == "PNG"
            assert image.size == figures.SAGITTAL_SIZE_PX
    montage = analysed.out / "montage_t1.png"
    if montage.exists():
        with Image.open(montage) as image:
            assert image.size == figures.MONTAGE_SIZE_PX
