"""The picture, SEG and SR writers called directly on an in-memory analysis of a tiny synthetic study."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from modic.errors import AnalysisError
from modic.io.study import load_study
from modic.io.volume import Volume, lps_to_ras
from modic.pipeline import Models, analyze_images
from modic.results import StudyAnalysis
from modic.report import dicom_seg, dicom_sr, figures
from modic.report.json_report import build_report
from modic.settings import load_settings
from modic.synth import generate_study, write_study


@pytest.fixture(scope="module")
def analysis(tmp_path_factory: pytest.TempPathFactory) -> StudyAnalysis:
    root = tmp_path_factory.mktemp("report_writers")
    study = generate_study(seed=5, config="tiny", modic="L5 superior:1/2")
    write_study(study, root / "input", formats=("dicom",))
    config = load_settings()
    return analyze_images(load_study(root / "input" / "dicom"), models=Models.load(config, device="cpu"), config=config)


def _volume(axes_lps: list[list[float]], shape: tuple[int, int, int]) -> Volume:
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(axes_lps, dtype=float).T
    return Volume(np.zeros(shape, dtype=np.float32), lps_to_ras(affine))


@pytest.mark.parametrize(
    "axes_lps",
    [
        # DICOM sagittal: columns posterior (+y LPS), rows inferior (-z), slices to the left (+x)
        [[0, 1, 0], [0, 0, -1], [1, 0, 0]],
        # the same volume stored the other way round: columns anterior, rows superior, slices to the right
        [[0, -1, 0], [0, 0, 1], [-1, 0, 0]],
        # rows and columns swapped: first axis superior-inferior
        [[0, 0, -1], [0, 1, 0], [1, 0, 0]],
    ],
)
def test_plane_shows_head_up_and_anterior_left(axes_lps: list[list[float]]) -> None:
    shape = (6, 7, 3)
    volume = _volume(axes_lps, shape)
    world = volume.world_coordinates(np.indices(shape).reshape(3, -1).T)
    superior_anterior = world[:, 2] + world[:, 1]  # RAS: +z superior, +y anterior
    marker = np.zeros(shape, dtype=np.uint8).reshape(-1)
    marker[np.argmax(superior_anterior)] = 1
    marker = marker.reshape(shape)
    plane = figures.Plane.of(volume, slice_axis=2)
    index = int(np.argwhere(marker)[0][2])
    shown = plane.take(marker, index)
    assert shown[0, 0] == 1, "the most superior-anterior voxel must be at the top left"
    assert shown.sum() == 1


def test_mid_slice_holds_the_most_band_voxels(analysis: StudyAnalysis) -> None:
    anatomy = analysis.anatomy
    axis = anatomy.slice_axis
    counts = (anatomy.endplate_map > 0).sum(axis=tuple(a for a in range(3) if a != axis))
    assert counts[figures.mid_slice(anatomy)] == counts.max() > 0


def test_figures_are_deterministic(analysis: StudyAnalysis, tmp_path: Path) -> None:
    report = build_report(analysis)
    first = figures.write_figures(analysis, report, tmp_path / "a")
    second = figures.write_figures(analysis, report, tmp_path / "b")
    assert set(first) >= {"sagittal_t1", "sagittal_t2"}
    for name, path in first.items():
        assert path.read_bytes() == second[name].read_bytes(), f"{name} differs between two runs"


def test_segment_frames_hold_each_structure_on_its_frames(analysis: StudyAnalysis) -> None:
    anatomy = analysis.anatomy
    specs = dicom_seg.segment_specs(anatomy)
    frames = dicom_seg.segment_frames(anatomy, specs)
    assert frames.dtype == np.uint8
    assert frames.shape == (*anatomy.geometry.shape[::-1], len(specs))
    for n, spec in enumerate(specs):
        expected = (getattr(anatomy, spec.attribute) == spec.value).transpose(2, 1, 0)
        assert expected.any()
        assert np.array_equal(frames[..., n], expected), spec.label


def test_seg_band_colours_follow_the_modic_type(analysis: StudyAnalysis, tmp_path: Path) -> None:
    import highdicom as hd

    dicom_seg.write_seg(analysis, tmp_path / "seg.dcm")
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    types = {g.endplate: g.modic_type for level in analysis.levels for g in level.endplates}
    for item in seg.SegmentSequence:
        name = str(item.TrackingID).removesuffix(" endplate")
        if name in types:
            rgb = hd.color.CIELabColor.from_dicom_value(tuple(item.RecommendedDisplayCIELabValue)).to_rgb()
            assert np.allclose(rgb, figures.MODIC_COLOURS[types[name]], atol=2)


def test_sr_keeps_an_endplate_whose_band_is_empty(analysis: StudyAnalysis, tmp_path: Path) -> None:
    import highdicom as hd

    emptied = analysis.anatomy.endplates[0]
    endplate_map = np.where(analysis.anatomy.endplate_map == emptied.label, 0, analysis.anatomy.endplate_map)
    changed = dataclasses.replace(analysis, anatomy=dataclasses.replace(analysis.anatomy, endplate_map=endplate_map))
    written = dicom_seg.write_seg(changed, tmp_path / "seg.dcm")
    sr_path = dicom_sr.write_sr(changed, build_report(changed), tmp_path / "sr.dcm", segmentation=written)
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert f"{emptied.name} endplate" not in {str(item.TrackingID) for item in seg.SegmentSequence}
    sr = hd.sr.srread(sr_path)
    plain = {group.tracking_identifier for group in sr.content.get_image_measurement_groups()}
    volumetric = {group.tracking_identifier for group in sr.content.get_volumetric_roi_measurement_groups()}
    assert plain == {f"{emptied.name} endplate"}
    assert f"{emptied.name} endplate" not in volumetric and volumetric
    if shutil.which("dciodvfy"):
        output = subprocess.run(["dciodvfy", str(sr_path)], capture_output=True, text=True, timeout=120)
        assert not [line for line in (output.stdout + output.stderr).splitlines() if line.startswith("Error")]


def test_seg_needs_dicom_t1_on_the_label_map_grid(analysis: StudyAnalysis, tmp_path: Path) -> None:
    without = dataclasses.replace(analysis, images=dataclasses.replace(analysis.images, t1_source_headers=()))
    with pytest.raises(AnalysisError, match="no T1 source headers"):
        dicom_seg.write_seg(without, tmp_path / "seg.dcm")
    fewer = dataclasses.replace(
        analysis, images=dataclasses.replace(analysis.images, t1_source_headers=analysis.images.t1_source_headers[1:])
    )
    with pytest.raises(AnalysisError, match="cannot map them onto its frames"):
        dicom_seg.write_seg(fewer, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_modic_type_codes() -> None:
    assert dicom_sr.modic_type_code(0, None).value == "MT0"
    assert dicom_sr.modic_type_code(2, None).meaning == "Modic type 2"
    mixed = dicom_sr.modic_type_code(2, "1/2")
    assert (mixed.value, mixed.scheme_designator, mixed.meaning) == ("MT1-2", "99MODIC", "Modic type 1/2 (mixed)")


def test_seg_and_sr_reference_a_t1_spread_over_multi_frame_files(analysis: StudyAnalysis, tmp_path: Path) -> None:
    """A multi-file multi-frame T1: every SEG frame names the file and frame at its own position; SR cites all files."""
    import highdicom as hd
    import pydicom

    from modic.synth.dicom_writer import write_enhanced_series

    classic = sorted({Path(str(h.filename)) for h in analysis.images.t1_source_headers})
    files = write_enhanced_series(classic, tmp_path / "t1", enhanced_mr=True, files=2)
    spread = load_study(tmp_path / "t1")
    assert spread.t1 is not None and np.array_equal(spread.t1.array, analysis.images.t1.array)
    moved = dataclasses.replace(
        analysis, images=dataclasses.replace(analysis.images, t1_source_headers=spread.t1_source_headers)
    )

    written = dicom_seg.write_seg(moved, tmp_path / "seg.dcm")
    sr_path = dicom_sr.write_sr(moved, build_report(moved), tmp_path / "sr.dcm", segmentation=written)

    sources = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)}
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    listed = {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert listed == set(sources)
    used = set()
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        image = sources[str(source.ReferencedSOPInstanceUID)]
        number = int(source.ReferencedFrameNumber)
        position = image.PerFrameFunctionalGroupsSequence[number - 1].PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose(
            [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient], [float(v) for v in position],
            atol=1e-3,
        )
        used.add(str(source.ReferencedSOPInstanceUID))
    assert used == set(sources), "the bands lie on frames of both files"

    sr = hd.sr.srread(sr_path)
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for i in s.ReferencedSeriesSequence[0].ReferencedSOPSequence}
    assert set(sources) <= evidence
    if shutil.which("dciodvfy"):
        for path in (tmp_path / "seg.dcm", sr_path):
            output = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
            assert not [line for line in (output.stdout + output.stderr).splitlines() if line.startswith("Error")]
    if shutil.which("dsr2xml"):
        xml = subprocess.run(["dsr2xml", str(sr_path)], capture_output=True, text=True, timeout=120)
        assert xml.returncode == 0 and all(uid in xml.stdout for uid in sources)


@pytest.mark.parametrize("thickness", [None, "", "0", "-1", "abc"])
def test_highdicom_sources_fill_what_highdicom_reads_in_copies(thickness: str | None) -> None:
    """A missing, empty or unusable SliceThickness gets the given value, missing patient and study attributes
    are added empty, an empty SpacingBetweenSlices is removed: in copies; complete headers are passed as they are."""
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset
    from pydicom.tag import Tag

    header = Dataset()
    header.SOPInstanceUID = "1.2.3"
    header.PatientName = "Anonymous"
    header.SpacingBetweenSlices = None
    if thickness is not None:  # raw, as read from a file: pydicom converts it (or fails to) when it is used
        header[0x00180050] = RawDataElement(Tag(0x00180050), "DS", len(thickness), thickness.encode(), 0, False, True)
    complete = Dataset()
    complete.update({keyword: "" for keyword in dicom_seg.PATIENT_AND_STUDY_TYPE_2})
    complete.SliceThickness = "3.5"

    copied, same = dicom_seg.highdicom_sources([header, complete], thickness=4.4)

    assert same is complete
    assert copied is not header and float(copied.SliceThickness) == 4.4
    assert "SpacingBetweenSlices" not in copied and "SpacingBetweenSlices" in header
    assert str(copied.PatientName) == "Anonymous" and copied.PatientID in ("", None) and "PatientID" not in header
    assert dicom_seg.slice_thickness(header) is None and float(same.SliceThickness) == 3.5
    assert "SliceThickness" not in dicom_seg.highdicom_sources([Dataset()], thickness=None)[0]
