"""Volumes and single slices from NIfTI, MHA/MHD/NRRD, DICOM files and raster images.

* NIfTI is read and written with nibabel; its affine is already voxel-to-RAS.
* MHA/MHD/NRRD are read with SimpleITK, whose direction, spacing and origin
  are in LPS; the affine ``[D @ diag(spacing) | origin]`` is converted with
  :func:`~modic.io.volume.lps_to_ras`.
* :func:`read_slice` reads one sagittal slice for the single-slice analysis
  path. Raster images (PNG/JPEG/TIFF) follow a fixed convention: head at the
  top row and anterior on the left column, so rows run superior->inferior and
  columns anterior->posterior, the same as a DICOM sagittal slice with
  ImageOrientationPatient ``[0, 1, 0, 0, 0, -1]``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from modic.atomic import temporary_path
from modic.errors import InputError, UsageError
from modic.io.dicom_scan import SeriesIndex, header_int, printable, series_label
from modic.io.dicom_volume import decode_pixels, io_config, load_series
from modic.io.volume import Volume, lps_to_ras
from modic.settings import IoSettings

log = logging.getLogger("modic.io.formats")

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
SAGITTAL_AXCODES = ("P", "I", "R")
"""Axis codes of a DICOM-convention sagittal slice: columns posterior, rows inferior, normal right."""

# Raster convention (LPS): columns run anterior->posterior (+y), rows superior->inferior (-z).
_RASTER_ROW_DIRECTION_LPS = np.array([0.0, 1.0, 0.0])
_RASTER_COLUMN_DIRECTION_LPS = np.array([0.0, 0.0, -1.0])


def read_volume(path: str | Path, *, config: IoSettings | None = None) -> Volume:
    """A 3D volume from a NIfTI (.nii, .nii.gz) or ITK (.mha, .mhd, .nrrd) file (``config``: the io settings).

    Raises:
        UsageError: unsupported file type.
        InputError: missing or unreadable file, not a 3D scalar image.
    """
    path = Path(path)
    kind = _kind(path)
    if kind == "nifti":
        return read_nifti(path, config=config)
    if kind == "itk":
        return read_itk(path, config=config)
    raise UsageError(
        f"'{path}' is not a NIfTI or MHA/MHD/NRRD file; give a .nii, .nii.gz, .mha, .mhd or .nrrd file "
        "(or a DICOM folder)"
    )


def read_nifti(path: str | Path, *, config: IoSettings | None = None) -> Volume:
    """A NIfTI image as a float32 Volume (scaling applied, affine from sform/qform as nibabel chooses).

    The voxel count of the header is checked against ``memory.max_voxels`` of
    ``configs/io.yaml`` before any voxel is read. A header without orientation
    (qform_code and sform_code both 0) is read with nibabel's default axes; a
    warning says so and ``info["warnings"]`` records it.
    """
    import nibabel as nib

    path = _existing(path)
    try:
        image: Any = nib.load(str(path))
        shape = tuple(int(n) for n in image.shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on broken files
        raise InputError(f"cannot read NIfTI '{path}': {type(exc).__name__}: {_one_line(exc)}") from None
    _check_voxels(shape, path=path, config=config)
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on broken files
        raise InputError(f"cannot read NIfTI '{path}': {type(exc).__name__}: {_one_line(exc)}") from None
    data = _as_3d(data, path=path)
    _check_finite(data, path=path)
    affine = np.asarray(image.affine, dtype=np.float64)
    _check_affine(affine, path=path)
    info: dict[str, Any] = {"source": "nifti", "path": str(path)}
    header = image.header
    if "qform_code" in header and int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        message = (
            f"'{path}' has no orientation (qform_code and sform_code are 0): its axes are assumed to run "
            f"{''.join(nib.aff2axcodes(affine))} as nibabel reads such files; check in the report's pictures that "
            "head and front are where they belong, or set the orientation in the file"
        )
        log.warning(message)
        info["warnings"] = [message]
    return Volume(array=data, affine=affine, info=info)


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` as NIfTI-1 (.nii or .nii.gz) atomically, sform and qform both set to its affine."""
    import nibabel as nib

    path = Path(path)
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise UsageError(f"NIfTI output '{path}' must end with .nii or .nii.gz")
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = nib.Nifti1Image(array, volume.affine)
    image.header.set_xyzt_units(xyz="mm")
    image.set_sform(volume.affine, code="scanner")
    image.set_qform(volume.affine, code="scanner")
    with temporary_path(path) as tmp:
        nib.save(image, str(tmp))
    return path


def read_itk(path: str | Path, *, config: IoSettings | None = None) -> Volume:
    """An MHA/MHD/NRRD image (via SimpleITK) as a float32 Volume with a RAS affine.

    The voxel count of the header is checked against ``memory.max_voxels`` of
    ``configs/io.yaml`` before any voxel is read.
    """
    import SimpleITK as sitk

    path = _existing(path)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        _check_voxels(tuple(int(n) for n in reader.GetSize()), path=path, config=config)
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read '{path}' with SimpleITK: {_one_line(exc)}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"'{path}' has {image.GetNumberOfComponentsPerPixel()} components per pixel; a scalar image is needed"
        )
    dimension = image.GetDimension()
    if dimension not in (2, 3):
        raise InputError(f"'{path}' is a {dimension}D image; a 3D volume (or a 2D slice) is needed")
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    _check_finite(array, path=path)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dimension, dimension)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    if dimension == 2:
        array = array[np.newaxis]
        direction = np.block([[direction, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])
        spacing = np.append(spacing, 1.0)
        origin = np.append(origin, 0.0)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction @ np.diag(spacing)
    affine_lps[:3, 3] = origin
    affine = lps_to_ras(affine_lps)
    _check_affine(affine, path=path)
    return Volume(
        array=np.ascontiguousarray(array.transpose(2, 1, 0)), affine=affine, info={"source": "itk", "path": str(path)}
    )


def read_slice(
    path: str | Path,
    *,
    spacing: tuple[float, float] | None = None,
    config: IoSettings | None = None,
) -> Volume:
    """One sagittal slice as a Volume of shape ``(I, J, 1)``.

    Args:
        path: PNG/JPEG/TIFF (8- or 16-bit grayscale), single-slice DICOM,
            single-slice NIfTI or MHA.
        spacing: ``(row_mm, col_mm)``: distance between rows and between
            columns. Required for raster images (they carry no geometry); for
            DICOM it is used only when PixelSpacing is absent, for NIfTI/MHA
            it is ignored (the header wins).
        config: the io settings (``io``; the shipped ones by default).

    Returns:
        A Volume whose ``array[i, j, 0]`` is the pixel at column ``i``, row
        ``j``. Raster images and NIfTI slices are oriented as a DICOM sagittal
        slice: ``i`` runs anterior->posterior, ``j`` superior->inferior.

    Raises:
        UsageError: raster image without ``spacing``, invalid ``spacing``,
            unsupported file type.
        InputError: unreadable file, colour or multi-page image, more than
            one slice, not a sagittal slice.
    """
    settings = io_config(config)
    path = _existing(path)
    if spacing is not None:
        spacing = _valid_spacing(spacing)
    suffix = path.name.lower()
    raster = tuple(str(s).lower() for s in settings.single_slice.raster_extensions)
    if suffix.endswith(raster):
        if spacing is None:
            raise UsageError(
                f"'{path.name}' is a {path.suffix.lstrip('.').upper()} image without pixel spacing; "
                "give spacing=(row_mm, col_mm) (--spacing ROW_MM COL_MM)"
            )
        pixels = _raster_pixels(path)
        return _raster_volume(
            pixels,
            spacing=spacing,
            thickness=_default_thickness(settings),
            info={"source": "raster", "path": str(path)},
        )
    kind = _kind(path)
    if kind == "nifti":
        return _single_slice_volume(read_nifti(path, config=settings), path=path, spacing=spacing)
    if kind == "itk":
        return _single_slice_volume(read_itk(path, config=settings), path=path, spacing=spacing)
    if _is_dicom(path):
        return _dicom_slice(path, spacing=spacing, settings=settings)
    raise UsageError(
        f"'{path.name}' is not a supported single-slice file; give a PNG, JPEG, TIFF, DICOM, NIfTI or MHA file"
    )


def _dicom_slice(path: Path, *, spacing: tuple[float, float] | None, settings: IoSettings) -> Volume:
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception as exc:  # noqa: BLE001 - corrupt file: one line for the user
        raise InputError(f"cannot read DICOM '{path}': {type(exc).__name__}: {_one_line(exc)}") from None
    header.filename = str(path)
    label = series_label(
        header_int(header, "SeriesNumber"),
        printable(str(header.get("SeriesDescription", "") or "")),
        str(header.get("SeriesInstanceUID", "") or "?"),
    )
    frames = header_int(header, "NumberOfFrames") or 1
    if frames != 1:
        raise InputError(f"{label}: '{path}' holds {frames} frames; read_slice needs a single-slice file")
    header_spacing = _header_spacing(header)
    if header_spacing is None and spacing is not None:
        if "PixelSpacing" in header:
            log.warning(
                "%s: PixelSpacing in the header is not two positive numbers; the given %s is used", path, spacing
            )
        header.PixelSpacing = [spacing[0], spacing[1]]
        header_spacing = spacing
    elif header_spacing is not None and spacing is not None and not np.allclose(header_spacing, spacing, atol=1e-3):
        log.warning("%s: PixelSpacing %s from the header is used, not the given %s", path, header_spacing, spacing)
    thickness = _dicom_thickness(header, default=_default_thickness(settings))
    if "ImageOrientationPatient" not in header or "ImagePositionPatient" not in header:
        if header_spacing is None:
            raise InputError(
                f"{label}: '{path}' has no ImageOrientationPatient/ImagePositionPatient and no usable PixelSpacing; "
                "give its spacing (--spacing ROW_MM COL_MM) to read it as a sagittal slice (head up, anterior left)"
            )
        log.warning(
            "%s: no patient geometry; assuming a sagittal slice with the head up and anterior on the left", path
        )
        full = pydicom.dcmread(path, force=True)
        pixels = decode_pixels(full, label=label)
        row_mm, col_mm = header_spacing
        return _raster_volume(
            pixels, spacing=(row_mm, col_mm), thickness=thickness, info={"source": "dicom", "path": str(path)}
        )
    series = SeriesIndex(
        study_uid=str(header.get("StudyInstanceUID", "") or ""),
        series_uid=str(header.get("SeriesInstanceUID", "") or ""),
        instances=(header,),
    )
    loaded = load_series(series, config=settings, min_slices=1, single_slice_thickness=thickness)
    volume = loaded.volume
    _require_sagittal(volume, path=path)
    return Volume(array=volume.array, affine=volume.affine, info={**volume.info, "path": str(path)})


def _single_slice_volume(volume: Volume, *, path: Path, spacing: tuple[float, float] | None) -> Volume:
    """A one-slice NIfTI/ITK volume reoriented to the DICOM sagittal convention (P, I, R)."""
    import nibabel as nib
    from nibabel import orientations as ornt

    if sum(n > 1 for n in volume.shape) > 2:
        raise InputError(
            f"'{path}' has shape {volume.shape}, more than one slice; read_slice needs a single slice "
            "(use read_volume for volumes)"
        )
    if spacing is not None:
        log.warning("%s: spacing from the file header is used; the given spacing %s is ignored", path, spacing)
    transform = ornt.ornt_transform(ornt.io_orientation(volume.affine), ornt.axcodes2ornt(SAGITTAL_AXCODES))
    array = ornt.apply_orientation(volume.array, transform)
    affine = volume.affine @ ornt.inv_ornt_aff(transform, volume.shape)
    if array.shape[2] != 1:
        codes = "".join(nib.aff2axcodes(volume.affine))
        raise InputError(
            f"'{path}' is not a sagittal slice: its single-voxel axis is not left-right "
            f"(orientation {codes}, shape {volume.shape}); give a sagittal slice"
        )
    return Volume(array=np.ascontiguousarray(array, dtype=np.float32), affine=affine, info=volume.info)


def _raster_pixels(path: Path) -> np.ndarray:
    """2D grayscale pixels (rows, columns) of a PNG/JPEG/TIFF file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames != 1:
                raise InputError(f"'{path}' holds {frames} pages/frames; give a single image")
            mode = image.mode
            if mode in ("1", "P"):
                converted = image.convert("RGB" if mode == "P" else "L")
                mode = converted.mode
                pixels = np.asarray(converted)
            else:
                pixels = np.asarray(image)
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot read image '{path}': {_one_line(exc)}") from None
    if pixels.ndim == 3:
        channels = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1]
        if not all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(channels.shape[2])):
            raise InputError(f"'{path}' is a colour image ({mode}); give a grayscale MR slice")
        pixels = channels[..., 0]
    if pixels.ndim != 2:
        raise InputError(f"'{path}' has pixel array shape {pixels.shape}; a 2D grayscale image is needed")
    return pixels.astype(np.float32)


def _raster_volume(
    pixels: np.ndarray, *, spacing: tuple[float, float], thickness: float, info: dict[str, Any]
) -> Volume:
    row_mm, col_mm = spacing
    normal = np.cross(_RASTER_ROW_DIRECTION_LPS, _RASTER_COLUMN_DIRECTION_LPS)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = _RASTER_ROW_DIRECTION_LPS * col_mm
    affine_lps[:3, 1] = _RASTER_COLUMN_DIRECTION_LPS * row_mm
    affine_lps[:3, 2] = normal * thickness
    array = np.ascontiguousarray(pixels.T[:, :, np.newaxis], dtype=np.float32)
    return Volume(array=array, affine=lps_to_ras(affine_lps), info={**info, "pixel_spacing": [row_mm, col_mm]})


def _require_sagittal(volume: Volume, *, path: Path) -> None:
    normal = volume.affine[:3, 2] / np.linalg.norm(volume.affine[:3, 2])
    if int(np.argmax(np.abs(normal))) != 0:
        raise InputError(
            f"'{path}' is not a sagittal slice (slice normal {np.round(normal, 3).tolist()} in RAS); "
            "give a sagittal slice"
        )


def _header_spacing(header: Any) -> tuple[float, float] | None:
    """PixelSpacing of a DICOM header as two positive millimetre values, or None when absent or unusable."""
    try:
        values = [float(v) for v in header.get("PixelSpacing") or ()]
    except Exception:  # noqa: BLE001 - pydicom raises many types converting damaged raw values
        return None
    if len(values) != 2 or not all(np.isfinite(values)) or min(values) <= 0:
        return None
    return values[0], values[1]


def _dicom_thickness(header: Any, *, default: float) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(header.get(keyword, "") or 0)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value) and value > 0:
            return value
    return default


def _default_thickness(settings: IoSettings) -> float:
    return float(settings.single_slice.default_thickness_mm)


def _valid_spacing(spacing: Any) -> tuple[float, float]:
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise UsageError(f"spacing {spacing!r} must be two numbers (row_mm, col_mm)") from None
    if len(values) != 2 or not all(np.isfinite(values)) or min(values) <= 0:
        raise UsageError(f"spacing {spacing!r} must be two positive millimetre values (row_mm, col_mm)")
    return values


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    return ""


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            start = handle.read(132)
    except OSError as exc:
        raise InputError(f"cannot read '{path}': {_one_line(exc)}") from None
    return start[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom", ".ima")


def _as_3d(data: np.ndarray, *, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[:, :, np.newaxis]
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"'{path}' has shape {data.shape}; a 3D scalar volume is needed")
    return data


def _check_voxels(shape: tuple[int, ...], *, path: Path, config: IoSettings | None) -> None:
    """The memory guard of DICOM series (``memory.max_voxels``), from a file header, before reading voxels."""
    voxels = int(np.prod(shape, dtype=object)) if shape else 0
    limit = int(io_config(config).memory.max_voxels)
    if voxels > limit:
        raise InputError(
            f"'{path}' is {' x '.join(str(n) for n in shape)} = {voxels:,} voxels by its header, above the memory "
            f"guard of {limit:,} voxels (memory.max_voxels in configs/io.yaml); check the file (a damaged header?), "
            "or raise the limit if the machine has the memory"
        )


def _check_finite(data: np.ndarray, *, path: Path) -> None:
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise InputError(
            f"'{path}' has {bad:,} voxel(s) that are NaN or infinite; replace them with numbers (e.g. 0) "
            "in the file, or export the image again"
        )


def _check_affine(affine: np.ndarray, *, path: Path) -> None:
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(f"'{path}' has an invalid voxel-to-world affine {np.round(affine, 4).tolist()}")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"'{path}' does not exist")
    if path.is_dir():
        raise UsageError(f"'{path}' is a folder; give a file")
    if not path.is_file():
        raise InputError(f"'{path}' is not a regular file (a pipe, socket or device); give an image file")
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
