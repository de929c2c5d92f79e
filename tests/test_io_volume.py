"""Volume building: slice order, affine, rescale, compressed pixel data and every refusal."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, RLELossless

from modic.errors import InputError, MissingCodecError
from modic.io.dicom_scan import SeriesIndex, scan_folder
from modic.io.dicom_volume import load_series, series_geometry
from modic.io.volume import Volume
from helpers.io import edit, grid_affine, new_instance_uids, volume, write


def only_series(root: Path) -> SeriesIndex:
    [study] = scan_folder(root).studies
    [series] = study.series
    return series


def world_from_headers(ds: pydicom.Dataset, i: float, j: float) -> np.ndarray:
    """RAS position of pixel (column i, row j) computed directly from one file's header."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    lps = ipp + i * col_spacing * iop[:3] + j * row_spacing * iop[3:]
    return np.array([-lps[0], -lps[1], lps[2]])


@pytest.mark.parametrize("plane", ["sagittal", "axial", "coronal"])
def test_affine_matches_each_files_header(tmp_path: Path, plane: str) -> None:
    original = volume((12, 10, 6), plane=plane, spacing=(0.7, 0.9, 3.3), origin=(-5.5, 12.25, 40.0))
    paths = write(tmp_path, "t1", 3, vol=original)

    loaded = load_series(only_series(tmp_path)).volume

    assert loaded.shape == (12, 10, 6)
    for path in paths:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.T.astype(np.float32)
        # Which slice holds this file is decided by pixel content, not by any position.
        [k] = [k for k in range(loaded.shape[2]) if np.array_equal(loaded.array[:, :, k], pixels)]
        for i, j in [(0, 0), (11, 0), (0, 9), (11, 9), (5, 4)]:
            expected = world_from_headers(ds, i, j)
            np.testing.assert_allclose(loaded.world_coordinates([(i, j, k)])[0], expected, atol=1e-4)


def test_slices_sorted_by_position_not_instance_number_or_file_name(tmp_path: Path) -> None:
    original = volume((16, 14, 9))
    names = [f"x{n:03d}" for n in random.Random(3).sample(range(100), 9)]
    paths = write(tmp_path, "t1", 3, vol=original, file_names=names)
    numbers = random.Random(4).sample(range(1, 10), 9)
    for path, number in zip(paths, numbers):
        edit(path, lambda ds, n=number: setattr(ds, "InstanceNumber", n))

    loaded = load_series(only_series(tmp_path))

    np.testing.assert_array_equal(loaded.volume.array, original.array)
    np.testing.assert_allclose(loaded.volume.affine, original.affine, atol=1e-5)
    assert [h.SOPInstanceUID for h in loaded.headers] == [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    assert all("PixelData" not in h for h in loaded.headers)
    assert loaded.volume.array.dtype == np.float32


def test_stack_written_against_the_normal_is_reordered_along_it(tmp_path: Path) -> None:
    original = volume((10, 8, 5), normal_sign=-1.0)
    write(tmp_path, "t1", 3, vol=original)

    loaded = load_series(only_series(tmp_path)).volume

    np.testing.assert_array_equal(loaded.array, original.array[:, :, ::-1])
    # Same physical place for the same voxel value.
    np.testing.assert_allclose(
        loaded.world_coordinates([(2, 3, 0)]), original.world_coordinates([(2, 3, 4)]), atol=1e-4
    )
    assert np.linalg.det(loaded.affine[:3, :3]) > 0


def test_rescale_slope_and_intercept_are_applied(tmp_path: Path) -> None:
    original = volume((8, 8, 4))
    values = Volume(original.array * 2.0 - 100.0, original.affine)
    write(tmp_path, "t1", 3, vol=values, rescale=(2.0, -100.0))
    stored = pydicom.dcmread(sorted(tmp_path.glob("*.dcm"))[0])
    assert float(stored.RescaleSlope) == 2.0

    loaded = load_series(only_series(tmp_path)).volume

    np.testing.assert_array_equal(loaded.array, values.array)
    assert loaded.array.min() < 0


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_pixel_data_decodes_to_the_original(tmp_path: Path, syntax: str) -> None:
    original = volume((64, 48, 3))
    paths = write(tmp_path, "t1", 3, vol=original, transfer_syntax=syntax)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax

    loaded = load_series(only_series(tmp_path)).volume

    np.testing.assert_array_equal(loaded.array, original.array)
    assert loaded.info["transfer_syntax"] == syntax


def test_missing_decoder_raises_missing_codec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "t1", 3, vol=volume((64, 48, 3)), transfer_syntax=JPEG2000Lossless)
    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg-openjpeg",)})
    assert not decoder.is_available

    with pytest.raises(MissingCodecError) as caught:
        load_series(only_series(tmp_path))

    message = str(caught.value)
    assert "JPEG 2000 Image Compression (Lossless Only)" in message
    assert JPEG2000Lossless in message
    assert 'pip install "modic[codecs]"' in message
    assert "\n" not in message


def test_identical_duplicates_are_dropped_with_a_warning(tmp_path: Path) -> None:
    paths = write(tmp_path / "a", "t1", 3, vol=volume((8, 8, 5)))
    copies = write(tmp_path / "b", "t1", 3, vol=volume((8, 8, 5)), file_names=[f"dup{k}" for k in range(5)])
    new_instance_uids(copies[:2], tag="dup")
    for path in copies[2:]:
        path.unlink()

    loaded = load_series(only_series(tmp_path))

    assert loaded.volume.shape == (8, 8, 5)
    assert loaded.warnings and "dropped 2 duplicate slice(s)" in loaded.warnings[0]
    assert len(loaded.headers) == 5
    assert paths


def test_duplicates_with_different_pixels_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a", "t1", 3, vol=volume((8, 8, 5), seed=1))
    copies = write(tmp_path / "b", "t1", 3, vol=volume((8, 8, 5), seed=2))
    new_instance_uids(copies, tag="echo2")

    with pytest.raises(InputError, match=r"has 5 duplicate slice position\(s\), 5 with different pixel data"):
        load_series(only_series(tmp_path))


def test_non_uniform_spacing_names_the_steps(tmp_path: Path) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 6), spacing=(0.8, 0.8, 4.0)))
    paths[3].unlink()

    with pytest.raises(InputError, match=r"non-uniform slice spacing: steps from 4 to 8 mm") as caught:
        load_series(only_series(tmp_path))
    assert "series 3 't1_tse_sag'" in str(caught.value)


def test_one_slice_series_is_refused_for_3d(tmp_path: Path) -> None:
    write(tmp_path, "t1", 3, vol=volume((8, 8, 1)))

    with pytest.raises(InputError, match=r"has 1 slice position\(s\).*at least 3"):
        load_series(only_series(tmp_path))


@pytest.mark.parametrize("keyword", ["ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing"])
def test_missing_geometry_attribute_is_named(tmp_path: Path, keyword: str) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    edit(paths[2], lambda ds: delattr(ds, keyword))

    with pytest.raises(InputError, match=f"{paths[2].name}' has no {keyword}"):
        load_series(only_series(tmp_path))


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
@pytest.mark.parametrize("bad", [["0", "0.8"], ["-0.8", "0.8"], ["NaN", "0.8"]])
def test_invalid_pixel_spacing_is_quoted(tmp_path: Path, bad: list[str]) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    for path in paths:
        edit(path, lambda ds: setattr(ds, "PixelSpacing", bad))
    shown = f"{float(bad[0]):.6g}"

    with pytest.raises(InputError, match=rf"PixelSpacing \[{shown}, 0.8\]"):
        load_series(only_series(tmp_path))


def test_inconsistent_orientation_is_quoted(tmp_path: Path) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    edit(paths[1], lambda ds: setattr(ds, "ImageOrientationPatient", [0, 0.996195, 0.0871557, 0, 0.0871557, -0.996195]))

    with pytest.raises(InputError, match=r"mixes slice orientations: ImageOrientationPatient \[0, 0.996195"):
        load_series(only_series(tmp_path))


def test_inconsistent_pixel_spacing_is_quoted(tmp_path: Path) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    edit(paths[2], lambda ds: setattr(ds, "PixelSpacing", ["0.9", "0.9"]))

    with pytest.raises(InputError, match=r"mixes pixel spacings: PixelSpacing \[0.9, 0.9\]"):
        load_series(only_series(tmp_path))


def test_inconsistent_matrix_is_quoted(tmp_path: Path) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))

    def shrink(ds: pydicom.Dataset) -> None:
        ds.Rows = 4
        ds.PixelData = ds.PixelData[: 4 * 8 * 2]

    edit(paths[3], shrink)

    with pytest.raises(InputError, match=r"mixes image sizes: Rows x Columns \(4, 8\)"):
        load_series(only_series(tmp_path))


def test_short_pixel_data_is_flagged_by_the_scan_and_refused_by_the_loader(tmp_path: Path) -> None:
    paths = write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    edit(paths[0], lambda ds: setattr(ds, "PixelData", ds.PixelData[:100]))

    series = only_series(tmp_path)
    assert len(series.instances) == 3
    [corrupt] = series.corrupt_files
    assert corrupt.path == str(paths[0]) and "truncated" in corrupt.reason

    headers = []
    for path in paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        header.filename = str(path)
        headers.append(header)
    unscanned = SeriesIndex(study_uid=series.study_uid, series_uid=series.series_uid, instances=tuple(headers))
    with pytest.raises(
        InputError, match=r"has 100 bytes of pixel data, fewer than Rows x Columns = 8 x 8 x 2 bytes = 128"
    ):
        load_series(unscanned)


def test_memory_guard_refuses_before_reading_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modic.settings import load_settings

    write(tmp_path, "t1", 3, vol=volume((8, 8, 4)))
    series = only_series(tmp_path)
    config = load_settings({"io": {"memory": {"max_voxels": 200}}}).io
    monkeypatch.setattr(pydicom, "dcmread", lambda *a, **k: pytest.fail("pixels read despite the guard"))

    with pytest.raises(InputError, match=r"8 x 8 x 4 = 256 voxels, above the memory guard of 200 voxels"):
        load_series(series, config=config)


def test_geometry_from_headers_alone(tmp_path: Path) -> None:
    original = volume((8, 6, 5), spacing=(0.5, 0.6, 3.0))
    write(tmp_path, "t1", 3, vol=original)
    series = only_series(tmp_path)

    geometry = series_geometry(series.instances, label=series.label)

    assert geometry.shape == (8, 6, 5)
    assert geometry.pixel_spacing == pytest.approx((0.6, 0.5))
    assert geometry.slice_spacing == pytest.approx(3.0)
    np.testing.assert_allclose(geometry.affine, grid_affine(spacing=(0.5, 0.6, 3.0)), atol=1e-5)


def test_files_without_preamble_or_file_meta_are_read(tmp_path: Path) -> None:
    original = volume((10, 8, 4))
    paths = write(tmp_path / "written", "t1", 3, vol=original)
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.preamble = None
        del ds.file_meta
        ds.save_as(tmp_path / f"raw{index}", implicit_vr=True, little_endian=True, enforce_file_format=False)
        path.unlink()
    assert (tmp_path / "raw0").read_bytes()[:2] == b"\x08\x00"  # starts directly with group 0008

    loaded = load_series(only_series(tmp_path))

    np.testing.assert_array_equal(loaded.volume.array, original.array)


def test_slice_at_keeps_each_voxel_where_it_was_in_the_world() -> None:
    affine = np.array([[0.0, 0.0, -4.0, 10.0], [-0.7, 0.0, 0.0, 20.0], [0.0, -0.7, 0.0, 30.0], [0, 0, 0, 1]])
    volume = Volume(array=np.arange(60, dtype=np.float32).reshape(3, 4, 5), affine=affine, info={"series": "t1"})
    one = volume.slice_at(3)
    assert one.shape == (3, 4, 1) and one.info == {"series": "t1"}
    np.testing.assert_array_equal(one.array[:, :, 0], volume.array[:, :, 3])
    np.testing.assert_allclose(one.world_coordinates([[2, 1, 0]]), volume.world_coordinates([[2, 1, 3]]))
    with pytest.raises(ValueError, match="slice 5 is outside the volume's 5 slices"):
        volume.slice_at(5)
