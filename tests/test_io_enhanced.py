"""Multi-frame MR DICOM: Enhanced MR, Legacy Converted Enhanced MR and multi-file multi-frame series.

Real scanner samples (Siemens XA10, Philips, pydicom's test file) from
``../shared/datasets/dicom_samples`` are checked against dcm2niix's NIfTI of
the same acquisitions; the synthetic lumbar study converted to multi-frame
objects (highdicom's legacy converter) must read and grade as its classic export.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from modic.cli import main
from modic.errors import InputError
from modic.io.dicom_scan import FrameHeader, scan_folder
from modic.io.dicom_volume import decode_frames, load_series
from modic.io.series_select import classify_series
from modic.io.study import load_study
from modic.synth import generate_study, write_study
from modic.synth.dicom_writer import write_enhanced_series

REAL_SAMPLES = {
    "siemens_xa10_enhanced": ("Siemens_REST1_w_SMS_PF7-8_6.nii", 4),
    "philips_enhanced": ("Philips_WIP_B0_NS_801_e1.nii", 2),
}
"""Sample folder -> (dcm2niix NIfTI of its first echo / time point, number of frame stacks)."""


def _geometry_deviation(ours: np.ndarray, reference: np.ndarray, shape: tuple[int, ...]) -> tuple[float, np.ndarray]:
    """Largest distance (mm) between the corner voxel centres of two grids, and the voxel map reference -> ours.

    dcm2niix flips rows (and Philips columns) into NIfTI's convention, so the
    grids are compared in physical space, through the integer voxel map.
    """
    mapping = np.round(np.linalg.inv(ours) @ reference)
    last = np.asarray(shape[:3]) - 1
    corners = np.array([[i, j, k, 1] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]).T
    distance = np.linalg.norm((reference @ corners - ours @ (mapping @ corners))[:3], axis=0)
    return float(distance.max()), mapping


@pytest.mark.parametrize("sample", sorted(REAL_SAMPLES))
def test_real_enhanced_series_match_dcm2niix(shared_datasets: Path, sample: str) -> None:
    root = shared_datasets / "dicom_samples"
    reference_name, stacks = REAL_SAMPLES[sample]
    series = scan_folder(root / sample).studies[0].series[0]
    assert all(isinstance(ds, FrameHeader) for ds in series.instances)

    classification = classify_series(series)
    loaded = load_series(series)
    reference = nib.load(str(root / "reference_nifti" / reference_name))

    # Brain/phantom acquisitions: readable, and refused only for not being sagittal.
    assert classification.problems == ()
    assert classification.plane == "axial"
    assert classification.slices == reference.shape[2]
    deviation, mapping = _geometry_deviation(loaded.volume.affine, reference.affine, reference.shape)
    assert deviation < 0.01
    assert loaded.volume.shape == reference.shape[:3]
    indices = np.indices(reference.shape[:3]).reshape(3, -1)
    mapped = (mapping @ np.vstack([indices, np.ones(indices.shape[1])])).astype(int)
    ours = loaded.volume.array[mapped[0], mapped[1], mapped[2]]
    theirs = np.asarray(reference.dataobj)[..., 0] if reference.ndim == 4 else np.asarray(reference.dataobj)
    # dcm2niix scales Philips values differently (precise values); the voxels are the same up to a factor.
    assert np.corrcoef(ours, theirs.reshape(-1))[0, 1] > 0.99999
    assert f"{stacks} stacks of frames" in loaded.warnings[0]


def test_real_enhanced_series_rejected_only_as_not_sagittal(shared_datasets: Path) -> None:
    images_error = None
    try:
        load_study(shared_datasets / "dicom_samples" / "siemens_xa10_enhanced")
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        images_error = str(exc)
    assert images_error is not None
    assert "no usable sagittal T1 or T2" in images_error and "axial" in images_error
    assert "SOP class" not in images_error and "geometry" not in images_error

    folder = shared_datasets / "dicom_samples" / "siemens_xa10_enhanced"
    uid = scan_folder(folder).studies[0].series[0].series_uid
    forced = load_study(folder, t1_uid=uid)  # read when chosen by UID; the analysis then refuses its field of view
    assert forced.t1 is not None and forced.t1.shape == (64, 64, 6)
    override = next(d for d in forced.decisions if d["event"] == "series")
    assert "user override despite: plane is axial, not sagittal" in override["warnings"]


def test_pydicom_enhanced_sample_decodes_in_every_syntax_and_has_no_geometry(shared_datasets: Path) -> None:
    folder = shared_datasets / "dicom_samples" / "pydicom_enhanced"
    frames = [
        decode_frames(pydicom.dcmread(folder / name), label="sample")
        for name in ("emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm")
    ]
    assert frames[0].shape == (10, 64, 64) and frames[0].std() > 0
    for other in frames[1:]:
        np.testing.assert_array_equal(other, frames[0])

    series = scan_folder(folder).studies[0].series[0]
    with pytest.raises(InputError, match=r"frame 1 of '.*emri_small.dcm' has no ImageOrientationPatient"):
        load_series(series)


@pytest.fixture(scope="module")
def classic_and_multiframe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic study written classic, and the same study as Enhanced MR (T1, one file) and
    Legacy Converted Enhanced MR (T2, frames split over two files)."""
    root = tmp_path_factory.mktemp("enhanced")
    study = generate_study(seed=11, config="tiny", modic="L4 inferior:1,L5 superior:2")
    write_study(study, root / "classic", formats=("dicom",))
    classic = root / "classic" / "dicom"
    multiframe = root / "multiframe"
    t1, t2 = sorted(folder for folder in classic.iterdir() if folder.is_dir())
    write_enhanced_series(sorted(t1.iterdir()), multiframe / "t1", enhanced_mr=True, files=1)
    write_enhanced_series(sorted(t2.iterdir()), multiframe / "t2", enhanced_mr=False, files=2)
    return classic, multiframe


def test_multiframe_study_reads_as_its_classic_export(classic_and_multiframe: tuple[Path, Path]) -> None:
    classic, multiframe = classic_and_multiframe
    assert str(pydicom.dcmread(next((multiframe / "t1").iterdir())).SOPClassUID) == "1.2.840.10008.5.1.4.1.1.4.1"

    a, b = load_study(classic), load_study(multiframe)

    for role in ("t1", "t2_native", "t2"):
        np.testing.assert_array_equal(getattr(a, role).array, getattr(b, role).array)
        np.testing.assert_allclose(getattr(a, role).affine, getattr(b, role).affine, atol=1e-6)
    for role in ("t1", "t2"):
        x, y = a.series[role], b.series[role]
        assert (y.weighting, y.repetition_time, y.echo_time) == (x.weighting, x.repetition_time, x.echo_time)
    weighting = {d["role"]: d["weighting_source"] for d in b.decisions if d["event"] == "series"}
    assert weighting == {"t1": "physics+description", "t2": "physics+description"}
    assert sorted(h.frame_number for h in b.t1_source_headers) == list(range(1, b.t1.shape[2] + 1))
    assert len({str(h.SOPInstanceUID) for h in b.t1_source_headers}) == 1
    assert len({str(h.SOPInstanceUID) for h in b.t2_source_headers}) == 2

    chosen = load_study(multiframe, t1_uid=b.series["t1"].series_uid, t2_uid=b.series["t2"].series_uid)
    np.testing.assert_array_equal(chosen.t1.array, a.t1.array)


def _grades(path: Path) -> list[tuple[str, ...]]:
    with path.open(newline="") as handle:
        return [(r["level"], r["endplate"], r["modic_type"], r["mixed"], r["confidence"]) for r in csv.DictReader(handle)]


@pytest.mark.slow
def test_enhanced_study_grades_as_classic_and_seg_references_frames(
    classic_and_multiframe: tuple[Path, Path], tmp_path: Path
) -> None:
    classic, multiframe = classic_and_multiframe
    enhanced_only = tmp_path / "enhanced_t1"
    shutil.copytree(multiframe / "t1", enhanced_only / "t1")
    shutil.copytree(sorted(p for p in classic.iterdir() if p.is_dir())[1], enhanced_only / "t2")

    for source, out in ((classic, tmp_path / "classic_out"), (enhanced_only, tmp_path / "enhanced_out")):
        assert main(["-q", "analyze", str(source), "-o", str(out), "--device", "cpu"]) == 0

    assert _grades(tmp_path / "enhanced_out" / "levels.csv") == _grades(tmp_path / "classic_out" / "levels.csv")
    seg = pydicom.dcmread(tmp_path / "enhanced_out" / "seg.dcm")
    source = pydicom.dcmread(next((multiframe / "t1").iterdir()), stop_before_pixels=True)
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert [item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence] == [source.SOPInstanceUID]
    frames = {
        int(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
        for frame in seg.PerFrameFunctionalGroupsSequence
    }
    assert frames and frames <= set(range(1, int(source.NumberOfFrames) + 1))
    if shutil.which("dciodvfy"):
        for name in ("seg.dcm", "sr.dcm"):
            result = subprocess.run(
                ["dciodvfy", str(tmp_path / "enhanced_out" / name)], capture_output=True, text=True, check=False
            )
            errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
            assert errors == [], (name, errors)


def test_frame_keys_that_never_share_a_position_do_not_split_the_series(
    classic_and_multiframe: tuple[Path, Path], tmp_path: Path
) -> None:
    """A dimension that numbers the slices (here TemporalPositionIndex 1..n, no DimensionIndexSequence) is no stack."""
    classic, multiframe = classic_and_multiframe
    path = tmp_path / "t1" / "MF0001.dcm"
    path.parent.mkdir()
    ds = pydicom.dcmread(next((multiframe / "t1").iterdir()))
    del ds.DimensionIndexSequence
    for number, frame in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
        frame.FrameContentSequence[0].TemporalPositionIndex = number
        del frame.FrameContentSequence[0].DimensionIndexValues
    ds.save_as(path, enforce_file_format=True)

    loaded = load_series(scan_folder(tmp_path).studies[0].series[0])

    expected = load_study(classic).t1
    np.testing.assert_array_equal(loaded.volume.array, expected.array)
    assert loaded.warnings == ()
