"""NIfTI / MHA volumes and single slices from raster images, DICOM and NIfTI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from modic.errors import InputError, UsageError
from modic.io.dicom_scan import scan_folder
from modic.io.dicom_volume import load_series
from modic.io.formats import read_itk, read_nifti, read_slice, read_volume, write_nifti
from modic.io.volume import Volume
from helpers.io import pattern, volume, write


def oblique_volume() -> Volume:
    angle = np.deg2rad(17.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 0.7, 3.5])
    affine[:3, 3] = [-20.5, 31.25, -7.0]
    return Volume(pattern((11, 9, 5)), affine)


def test_dicom_to_nifti_round_trip_preserves_geometry(tmp_path: Path) -> None:
    write(tmp_path / "dicom", "t1", 3, vol=volume((20, 16, 6), spacing=(0.7, 0.9, 3.3)))
    [series] = scan_folder(tmp_path / "dicom").studies[0].series
    from_dicom = load_series(series).volume

    path = write_nifti(from_dicom, tmp_path / "t1.nii.gz")
    back = read_nifti(path)

    np.testing.assert_array_equal(back.array, from_dicom.array)
    np.testing.assert_allclose(back.affine, from_dicom.affine, atol=1e-4)
    assert back.axcodes == from_dicom.axcodes
    header = nib.load(str(path)).header
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1


def test_mha_reading_equals_nifti_reading_of_the_same_image(tmp_path: Path) -> None:
    original = oblique_volume()
    nifti = write_nifti(original, tmp_path / "image.nii")
    # ITK converts the NIfTI (RAS) to its own LPS geometry and writes the MHA.
    sitk.WriteImage(sitk.ReadImage(str(nifti)), str(tmp_path / "image.mha"))

    from_mha = read_itk(tmp_path / "image.mha")
    from_nifti = read_nifti(nifti)

    np.testing.assert_array_equal(from_mha.array, from_nifti.array)
    np.testing.assert_allclose(from_mha.affine, from_nifti.affine, atol=1e-4)
    np.testing.assert_allclose(from_mha.affine, original.affine, atol=1e-4)
    assert read_volume(tmp_path / "image.mha").shape == (11, 9, 5)


def test_itk_geometry_is_converted_from_lps(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.zeros((4, 3, 2), np.float32))  # ITK array order is z, y, x
    image.SetSpacing((0.5, 0.6, 2.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    image.SetDirection((0, 0, -1, 1, 0, 0, 0, -1, 0))
    sitk.WriteImage(image, str(tmp_path / "x.mhd"))

    result = read_itk(tmp_path / "x.mhd")

    assert result.shape == (2, 3, 4)
    lps = np.array([[0, 0, -2.0, 10.0], [0.5, 0, 0, -20.0], [0, -0.6, 0, 30.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(result.affine, np.diag([-1, -1, 1, 1]) @ lps)


@pytest.mark.parametrize(("suffix", "dtype"), [(".png", np.uint8), (".png", np.uint16), (".tif", np.uint16)])
def test_raster_slice_convention(tmp_path: Path, suffix: str, dtype: type) -> None:
    pixels = (np.arange(6 * 5).reshape(6, 5) * (300 if dtype == np.uint16 else 7)).astype(dtype)  # 6 rows, 5 columns
    path = tmp_path / f"slice{suffix}"
    Image.fromarray(pixels).save(path)

    result = read_slice(path, spacing=(0.5, 0.7))

    assert result.shape == (5, 6, 1)
    np.testing.assert_array_equal(result.array[:, :, 0], pixels.T.astype(np.float32))
    assert result.axcodes == ("P", "I", "R")  # columns anterior->posterior, rows superior->inferior
    step_column = result.world_coordinates([(1, 0, 0)]) - result.world_coordinates([(0, 0, 0)])
    step_row = result.world_coordinates([(0, 1, 0)]) - result.world_coordinates([(0, 0, 0)])
    np.testing.assert_allclose(step_column[0], [0, -0.7, 0])
    np.testing.assert_allclose(step_row[0], [0, 0, -0.5])


def test_jpeg_slice_and_missing_spacing(tmp_path: Path) -> None:
    pixels = np.full((16, 24), 128, np.uint8)
    Image.fromarray(pixels).save(tmp_path / "slice.jpg")

    result = read_slice(tmp_path / "slice.jpg", spacing=(1.0, 1.0))
    assert result.shape == (24, 16, 1)
    assert abs(float(result.array.mean()) - 128) < 2

    Image.fromarray(pixels).save(tmp_path / "slice.png")
    with pytest.raises(UsageError, match="PNG image without pixel spacing"):
        read_slice(tmp_path / "slice.png")
    with pytest.raises(UsageError, match=r"spacing \(0.0, 1.0\)"):
        read_slice(tmp_path / "slice.png", spacing=(0.0, 1.0))


def test_colour_image_is_refused(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match=r"colour image \(RGB\)"):
        read_slice(tmp_path / "colour.png", spacing=(1.0, 1.0))


def test_single_slice_dicom_uses_header_geometry(tmp_path: Path) -> None:
    original = volume((20, 16, 1), spacing=(0.6, 0.75, 4.0))
    [path] = write(tmp_path, "t2", 4, vol=original)

    result = read_slice(path)

    np.testing.assert_array_equal(result.array, original.array)
    np.testing.assert_allclose(result.affine[:3, :2], original.affine[:3, :2], atol=1e-5)
    np.testing.assert_allclose(result.affine[:3, 3], original.affine[:3, 3], atol=1e-4)
    assert result.spacing[2] == pytest.approx(4.0)
    assert result.info["series_description"] == "t2_tse_sag"


def test_single_slice_dicom_must_be_sagittal(tmp_path: Path) -> None:
    [path] = write(tmp_path, "t2", 4, vol=volume((8, 8, 1), plane="axial"))
    with pytest.raises(InputError, match="is not a sagittal slice"):
        read_slice(path)


def test_single_slice_nifti_is_reoriented_to_the_sagittal_convention(tmp_path: Path) -> None:
    data = pattern((1, 12, 10))  # RAS-stored sagittal slice: x is the single-voxel axis
    affine = np.diag([3.0, 0.8, 0.9, 1.0])
    affine[:3, 3] = [5.0, -40.0, -20.0]
    path = write_nifti(Volume(data, affine), tmp_path / "slice.nii.gz")

    result = read_slice(path)

    assert result.shape == (12, 10, 1)
    assert result.axcodes == ("P", "I", "R")
    original = Volume(data, affine)
    for index in [(0, 0, 0), (0, 11, 9), (0, 4, 7)]:
        world = original.world_coordinates([index])
        voxel = np.rint(np.linalg.solve(result.affine, np.append(world[0], 1.0))[:3]).astype(int)
        assert result.array[tuple(voxel)] == data[index]


def test_nifti_volume_given_to_read_slice_is_refused(tmp_path: Path) -> None:
    path = write_nifti(volume((6, 6, 3)), tmp_path / "vol.nii.gz")
    with pytest.raises(InputError, match=r"shape \(6, 6, 3\), more than one slice"):
        read_slice(path)


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "x.vtk").write_text("x")
    with pytest.raises(UsageError, match="not a NIfTI or MHA"):
        read_volume(tmp_path / "x.vtk")
    with pytest.raises(InputError, match="does not exist"):
        read_nifti(tmp_path / "missing.nii.gz")
    with pytest.raises(UsageError, match="must end with .nii or .nii.gz"):
        write_nifti(volume((4, 4, 3)), tmp_path / "out.img")
