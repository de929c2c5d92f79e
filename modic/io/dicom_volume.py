"""Build a :class:`~modic.io.volume.Volume` from the files of one DICOM series.

Slices are ordered by their position along the slice normal
(``dot(ImagePositionPatient, normal)``), never by InstanceNumber. The affine
comes from ImagePositionPatient, ImageOrientationPatient and PixelSpacing and
is converted from DICOM's LPS to RAS with :func:`~modic.io.volume.lps_to_ras`:
``i`` is the column index (along the IOP row direction), ``j`` the row index
(along the IOP column direction) and ``k`` the slice index. Every problem is a
one-line :class:`~modic.errors.InputError` naming the series and the values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from modic.errors import InputError, MissingCodecError
from modic.io.dicom_scan import FrameHeader, SeriesIndex, expand_frames, frame_number, header_int, printable, series_label
from modic.io.volume import Volume, lps_to_ras
from modic.settings import IoSettings, shipped_settings

log = logging.getLogger("modic.io.dicom_volume")

CODECS_FIX = 'install the decoders with: pip install "modic[codecs]"'


@dataclass(frozen=True)
class SeriesGeometry:
    """Validated geometry of a series, from headers only.

    Attributes:
        order: indices of the instances in slice order (one per position).
        duplicates: for each position held by several instances, the indices
            of the extra instances paired with the kept one: ``(kept, extra)``.
        affine: 4x4 voxel-to-RAS affine.
        shape: ``(columns, rows, slices)``, the shape of the volume array.
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)`` in mm.
        slice_spacing: distance between slice centres in mm.
        normal: unit slice normal in LPS.
        positions: slice positions along the normal (mm), in slice order.
        stacks: number of frame stacks in the series (echoes, time points or
            image types of a multi-frame series; 1 for classic series); only
            the first is used (:func:`frame_stacks`).
        stack_key: the key of the stack used (empty for classic series).
    """

    order: tuple[int, ...]
    duplicates: tuple[tuple[int, int], ...]
    affine: np.ndarray
    shape: tuple[int, int, int]
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    normal: tuple[float, float, float]
    positions: tuple[float, ...]
    stacks: int = 1
    stack_key: tuple[Any, ...] = ()


@dataclass(frozen=True)
class LoadedSeries:
    """A series read into a volume, with its headers in slice order.

    ``headers`` are the datasets of the files used, without pixel data, in
    slice order (what DICOM SEG/SR writers need to reference the source); for
    a multi-frame series, the :class:`~modic.io.dicom_scan.FrameHeader` of
    each frame used. ``warnings`` are said in the decision log; ``flags``
    (``(code, message)``) also go to the report's warnings.
    """

    volume: Volume
    headers: tuple[Dataset, ...]
    warnings: tuple[str, ...]
    flags: tuple[tuple[str, str], ...] = ()


def io_config(config: IoSettings | None = None) -> IoSettings:
    """``config``, or the shipped io settings (``configs/io.yaml``) when None."""
    return config if config is not None else shipped_settings().io


def series_geometry(
    instances: Sequence[Dataset],
    *,
    label: str,
    config: IoSettings | None = None,
    min_slices: int | None = None,
    single_slice_thickness: float | None = None,
) -> SeriesGeometry:
    """Check the geometry of a series from its headers and compute its affine.

    Args:
        instances: header datasets of the series (any order).
        label: how messages name the series (see :func:`series_label`).
        config: the io settings (``io``); the shipped ones by default.
        min_slices: fewest distinct slice positions accepted (default
            ``geometry.min_slices``).
        single_slice_thickness: slice thickness (mm) used for the third
            affine column when the series has one slice.

    Raises:
        InputError: missing or invalid ImagePositionPatient /
            ImageOrientationPatient / PixelSpacing, inconsistent orientation,
            spacing or matrix, too few slices, non-uniform or non-collinear
            slice positions.
    """
    geo = io_config(config).geometry
    needed = int(geo.min_slices) if min_slices is None else min_slices
    if not instances:
        raise InputError(f"{label} has no images")
    stacks = frame_stacks(instances)
    subset = stacks[0]
    everything = instances
    instances = [everything[i] for i in subset]

    orientations = [_numbers(ds, "ImageOrientationPatient", 6, label=label) for ds in instances]
    positions = [_numbers(ds, "ImagePositionPatient", 3, label=label) for ds in instances]
    spacings = [_numbers(ds, "PixelSpacing", 2, label=label) for ds in instances]
    for ds, spacing in zip(instances, spacings):
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise InputError(
                f"{label}: PixelSpacing {_fmt(spacing)} in {_name(ds)} is not a pair of positive numbers; "
                "the file's geometry is corrupt, re-export the series"
            )
    _check_orientation(orientations[0], instances[0], label=label, tolerance=float(geo.orthonormality_tolerance))

    first = orientations[0]
    for ds, orientation in zip(instances, orientations):
        difference = float(np.max(np.abs(np.subtract(orientation, first))))
        if difference > float(geo.orientation_tolerance):
            raise InputError(
                f"{label} mixes slice orientations: ImageOrientationPatient {_fmt(orientation)} in {_name(ds)} "
                f"differs from {_fmt(first)} in {_name(instances[0])}; choose a series acquired in one plane"
            )
    for ds, spacing in zip(instances, spacings):
        if float(np.max(np.abs(np.subtract(spacing, spacings[0])))) > float(geo.pixel_spacing_tolerance_mm):
            raise InputError(
                f"{label} mixes pixel spacings: PixelSpacing {_fmt(spacing)} in {_name(ds)} "
                f"differs from {_fmt(spacings[0])} in {_name(instances[0])}; choose another series"
            )
    matrix0 = _matrix(instances[0], label=label)
    for ds in instances:
        if _matrix(ds, label=label) != matrix0:
            raise InputError(
                f"{label} mixes image sizes: Rows x Columns {_matrix(ds, label=label)} in {_name(ds)} "
                f"differs from {matrix0} in {_name(instances[0])}; choose another series"
            )

    row_cos = np.asarray(first[:3], dtype=float)
    col_cos = np.asarray(first[3:], dtype=float)
    normal = np.cross(row_cos, col_cos)
    normal /= np.linalg.norm(normal)
    ipp = np.asarray(positions, dtype=float)
    along = ipp @ normal
    order = np.argsort(along, kind="stable")

    kept: list[int] = []
    duplicates: list[tuple[int, int]] = []
    dup_tolerance = float(geo.duplicate_position_tolerance_mm)
    for index in order:
        if kept and abs(along[index] - along[kept[-1]]) <= dup_tolerance:
            duplicates.append((int(kept[-1]), int(index)))
        else:
            kept.append(int(index))

    if len(kept) < needed:
        raise InputError(
            f"{label} has {len(kept)} slice position(s) ({len(instances)} image(s)); a 3D volume needs at least "
            f"{needed} (geometry.min_slices in configs/io.yaml); use the single-slice path for one slice"
        )

    stack = ipp[kept]
    steps = np.diff(along[kept])
    if len(kept) > 1:
        mean_step = float(np.mean(steps))
        allowed = max(
            float(geo.slice_spacing_tolerance_mm), float(geo.slice_spacing_tolerance_fraction) * mean_step
        )
        worst = int(np.argmax(np.abs(steps - mean_step)))
        if abs(float(steps[worst]) - mean_step) > allowed:
            raise InputError(
                f"{label} has non-uniform slice spacing: steps from {steps.min():.4g} to {steps.max():.4g} mm "
                f"along the slice normal (mean {mean_step:.4g} mm, tolerance {allowed:.4g} mm; "
                f"irregular step after the slice at {along[kept][worst]:.4g} mm); a slice may be missing, "
                "re-export the complete series"
            )
        step_vector = (stack[-1] - stack[0]) / (len(kept) - 1)
        deviation = stack - (stack[0] + np.outer(np.arange(len(kept)), step_vector))
        worst_deviation = float(np.max(np.linalg.norm(deviation, axis=1)))
        if worst_deviation > float(geo.collinearity_tolerance_mm):
            raise InputError(
                f"{label}: slice origins (ImagePositionPatient) do not lie on a straight line "
                f"(largest deviation {worst_deviation:.4g} mm, tolerance {geo.collinearity_tolerance_mm} mm); "
                "the series mixes stacks, choose another series"
            )
        slice_spacing = float(np.linalg.norm(step_vector))
    else:
        thickness = single_slice_thickness
        if thickness is None or not np.isfinite(thickness) or thickness <= 0:
            raise InputError(f"{label} has one slice and no usable slice thickness ({thickness})")
        step_vector = normal * thickness
        slice_spacing = float(thickness)

    row_spacing, col_spacing = (float(v) for v in spacings[0])
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_cos * col_spacing
    affine_lps[:3, 1] = col_cos * row_spacing
    affine_lps[:3, 2] = step_vector
    affine_lps[:3, 3] = stack[0]
    rows, columns = matrix0
    return SeriesGeometry(
        order=tuple(subset[i] for i in kept),
        duplicates=tuple((subset[a], subset[b]) for a, b in duplicates),
        affine=lps_to_ras(affine_lps),
        shape=(columns, rows, len(kept)),
        pixel_spacing=(row_spacing, col_spacing),
        slice_spacing=slice_spacing,
        normal=tuple(float(v) for v in normal),  # type: ignore[arg-type]
        positions=tuple(float(v) for v in along[kept]),
        stacks=len(stacks),
        stack_key=tuple(getattr(everything[subset[0]], "stack_key", ())),
    )


def frame_stacks(instances: Sequence[Dataset]) -> list[list[int]]:
    """Indices of ``instances`` grouped by stack (echo, time point, image type of multi-frame images), first stack first.

    Classic single-frame headers form one stack: their mixed acquisitions are
    refused by :func:`load_series` when two differ at one position. Frames of
    multi-frame images carry their stack in :attr:`FrameHeader.stack_key`
    (the non-spatial dimension indices, or temporal position, echo time and
    frame type); the stack with the smallest key is the one read, as dcm2niix
    writes the first echo and the first time point first. Keys that never put
    two frames at one position (e.g. a private dimension numbering slices) do
    not split the series.
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, ds in enumerate(instances):
        groups.setdefault(tuple(getattr(ds, "stack_key", ())) if isinstance(ds, FrameHeader) else (), []).append(index)
    if len(groups) > 1 and len(set(map(_position_key, instances))) == len(instances):
        return [list(range(len(instances)))]  # keys that never share a position order slices, not stacks
    return [groups[key] for key in sorted(groups, key=_sortable)]


def _position_key(ds: Dataset) -> tuple[str, ...]:
    """ImagePositionPatient rounded to 1 micrometre, as text (values may be damaged)."""
    value = ds.get("ImagePositionPatient")
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(f"{float(v):.3f}" if isinstance(v, (int, float)) else str(v) for v in value)
    return (str(value),)


def _sortable(key: tuple[Any, ...]) -> tuple[tuple[int, float, str], ...]:
    return tuple((0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v)) for v in key)


def load_series(
    series: SeriesIndex,
    *,
    config: IoSettings | None = None,
    min_slices: int | None = None,
    single_slice_thickness: float | None = None,
) -> LoadedSeries:
    """Read the pixel data of ``series`` into a float32 volume in RAS.

    RescaleSlope/RescaleIntercept are applied. Instances sharing a slice
    position are dropped when their pixels are identical to the kept one (said
    in :attr:`LoadedSeries.warnings`); otherwise the series is refused.

    Raises:
        InputError: invalid geometry, memory guard exceeded, duplicate
            positions with different pixels, short or undecodable pixel data.
        MissingCodecError: compressed pixel data without an installed decoder.
    """
    settings = io_config(config)
    label = series.label
    instances = series.instances
    first = instances[0]
    check_memory(series, config=settings)
    geometry = series_geometry(
        instances, label=label, config=settings, min_slices=min_slices, single_slice_thickness=single_slice_thickness
    )

    data = np.empty(geometry.shape, dtype=np.float32)
    headers: list[Dataset] = []
    files: dict[str, tuple[np.ndarray, list[Dataset]]] = {}
    for k, index in enumerate(geometry.order):
        pixels, header = _read_image(instances[index], label=label, files=files)
        data[:, :, k] = pixels.T
        headers.append(header)

    warnings: list[str] = []
    flags: list[tuple[str, str]] = []
    short_label = series_label(series.number, series.description, "")
    if geometry.stacks > 1:
        warnings.append(
            f"{short_label}: {geometry.stacks} stacks of frames at the same positions (echoes, time points or image "
            f"types); the first (dimension key {list(geometry.stack_key)}, {len(geometry.order)} frames) is read"
        )
    if any(str(h.get("PhotometricInterpretation", "")) == "MONOCHROME1" for h in headers):
        flags.append(
            (
                "monochrome1_inverted",
                f"{short_label} is stored as MONOCHROME1 (low values bright); its pixels were inverted as viewers "
                "display them",
            )
        )
    if geometry.duplicates:
        position = dict(zip(geometry.order, geometry.positions))
        differing = []
        for kept, extra in geometry.duplicates:
            kept_pixels = data[:, :, geometry.order.index(kept)]
            extra_pixels, _ = _read_image(instances[extra], label=label, files=files)
            if not np.array_equal(kept_pixels, extra_pixels.T):
                differing.append((kept, extra))
        if differing:
            kept, extra = differing[0]
            raise InputError(
                f"{label} has {len(geometry.duplicates)} duplicate slice position(s), {len(differing)} with different "
                f"pixel data (e.g. at {position[kept]:.4g} mm: {_name(instances[kept])} and "
                f"{_name(instances[extra])}); "
                "the series mixes acquisitions (echoes or repeats), choose another series"
            )
        message = (
            f"{short_label}: dropped {len(geometry.duplicates)} duplicate "
            "slice(s) with identical pixels at the same position"
        )
        warnings.append(message)

    info = _volume_info(first, series=series, geometry=geometry, duplicates_dropped=len(geometry.duplicates))
    volume = Volume(array=data, affine=geometry.affine, info=info)
    return LoadedSeries(volume=volume, headers=tuple(headers), warnings=tuple(warnings), flags=tuple(flags))


def check_memory(series: SeriesIndex, *, config: IoSettings | None = None) -> None:
    """Raise the memory-guard InputError for ``series`` without reading pixels."""
    settings = io_config(config)
    rows, columns = _matrix(series.first, label=series.label)
    voxels = rows * columns * len(series.instances)
    limit = int(settings.memory.max_voxels)
    if voxels > limit:
        raise InputError(
            f"{series.label} is {rows} x {columns} x {len(series.instances)} = {voxels:,} voxels, above the memory "
            f"guard of {limit:,} voxels (memory.max_voxels in configs/io.yaml); raise the limit if the machine "
            "has the memory"
        )


def decode_pixels(ds: Dataset, *, label: str) -> np.ndarray:
    """The 2D pixel values of one full single-frame dataset (compressed or not), as float32 after rescale.

    MONOCHROME1 pixels are inverted (:func:`decode_frames`).

    Raises:
        MissingCodecError: the transfer syntax needs a decoder that is not installed.
        InputError: missing, short or undecodable pixel data, non-grayscale
            images, multi-frame images or an invalid rescale.
    """
    frames = _whole_number(ds, "NumberOfFrames", default=1, label=label) or 1
    if frames != 1:
        raise InputError(
            f"{label}: {_name(ds)} holds {frames} frames; give the series folder so that its frames are read "
            "as slices"
        )
    return rescale(decode_frames(ds, label=label)[0], ds, label=label)


def decode_frames(ds: Dataset, *, label: str) -> np.ndarray:
    """The stored pixel values of every frame of one full dataset, ``(frames, rows, columns)`` float32.

    MONOCHROME1 values are inverted within the stored range (``2**BitsStored - 1 - v``,
    ``-1 - v`` when signed), so that bright means high signal as in MONOCHROME2.

    Raises:
        MissingCodecError: the transfer syntax needs a decoder that is not installed.
        InputError: missing, short or undecodable pixel data or non-grayscale images.
    """
    name = _name(ds)
    if "PixelData" not in ds:
        raise InputError(f"{label}: {name} has no pixel data")
    samples = _whole_number(ds, "SamplesPerPixel", default=1, label=label)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(
            f"{label}: {name} is not a grayscale image (SamplesPerPixel {samples}, "
            f"PhotometricInterpretation '{photometric}'); MR analysis needs MONOCHROME images"
        )
    frames = max(_whole_number(ds, "NumberOfFrames", default=1, label=label) or 1, 1)
    syntax = _transfer_syntax(ds)
    rows, columns = _matrix(ds, label=label)
    if not syntax.is_transfer_syntax or syntax.is_compressed:
        _require_decoder(syntax, label=label)
    else:
        bytes_per_pixel = -(-(_whole_number(ds, "BitsAllocated", default=16, label=label) or 16) // 8)
        expected = rows * columns * bytes_per_pixel * frames
        if len(ds.PixelData) < expected:
            size = f"Rows x Columns x frames = {rows} x {columns} x {frames}" if frames > 1 else (
                f"Rows x Columns = {rows} x {columns}"
            )
            raise InputError(
                f"{label}: {name} has {len(ds.PixelData)} bytes of pixel data, fewer than {size} x {bytes_per_pixel} "
                f"bytes = {expected}; the file is truncated, re-export it"
            )
    try:
        stored = ds.pixel_array
    except RuntimeError as exc:
        if "Unable to decompress" in str(exc):
            raise MissingCodecError(
                f"{label}: cannot decode '{syntax.name}' ({syntax}) pixel data in {name}: "
                f"{' '.join(str(exc).split())}; {CODECS_FIX}"
            ) from None
        raise InputError(f"{label}: cannot decode the pixel data of {name}: {' '.join(str(exc).split())}") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - decoders raise many types on corrupt data, Rust ones a PanicException
        raise InputError(
            f"{label}: cannot decode the '{syntax.name}' pixel data of {name}: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())}; the file is corrupt, re-export it"
        ) from None
    expected_shape = (frames, rows, columns) if frames > 1 else (rows, columns)
    if stored.shape != expected_shape:
        raise InputError(
            f"{label}: {name} decodes to an array of shape {stored.shape}, not {'frames x ' if frames > 1 else ''}"
            f"Rows x Columns {expected_shape}"
        )
    pixels = stored.reshape(frames, rows, columns).astype(np.float32)
    if photometric == "MONOCHROME1":
        bits = _whole_number(ds, "BitsStored", default=16, label=label) or 16
        signed = (_whole_number(ds, "PixelRepresentation", default=0, label=label) or 0) == 1
        pixels = np.float32(-1.0 if signed else float(2**bits - 1)) - pixels
    return pixels


def rescale(pixels: np.ndarray, ds: Dataset, *, label: str) -> np.ndarray:
    """``pixels`` after the RescaleSlope/RescaleIntercept of ``ds`` (a classic or frame header).

    Raises:
        InputError: a zero or non-finite slope or a non-finite intercept.
    """
    slope = _optional_number(ds, "RescaleSlope", default=1.0)
    intercept = _optional_number(ds, "RescaleIntercept", default=0.0)
    if not np.isfinite(slope) or slope == 0 or not np.isfinite(intercept):
        raise InputError(
            f"{label}: {_name(ds)} has RescaleSlope {slope} / RescaleIntercept {intercept}; "
            "the slope must be a non-zero number and the intercept finite"
        )
    pixels = pixels.astype(np.float32, copy=True)
    if slope != 1.0:
        pixels *= np.float32(slope)
    if intercept != 0.0:
        pixels += np.float32(intercept)
    return pixels


def _transfer_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax; for files without file meta (no preamble), the encoding they were read with."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit is None:
            implicit, little = True, True
        meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return UID(str(meta.TransferSyntaxUID))


def _read_image(
    header: Dataset, *, label: str, files: dict[str, tuple[np.ndarray, list[Dataset]]]
) -> tuple[np.ndarray, Dataset]:
    """Pixels (rows, columns) after rescale and the header of one instance or frame.

    A classic file gives its full header without pixel data; a frame gives its
    :class:`~modic.io.dicom_scan.FrameHeader` built from the full header. A multi-frame file is decoded
    once per series and kept in ``files``.
    """
    number = frame_number(header)
    if number is None:
        ds = _read_file(header, label=label)
        pixels = decode_pixels(ds, label=label)
        del ds.PixelData
        return pixels, ds
    path = str(header.filename)
    if path not in files:
        ds = _read_file(header, label=label)
        frames = decode_frames(ds, label=label)
        del ds.PixelData
        ds.filename = path
        try:
            files[path] = (frames, expand_frames(ds))
        except Exception as exc:  # noqa: BLE001 - the file changed or is damaged since the scan
            raise InputError(
                f"{label}: cannot read the frame functional groups of '{path}': {type(exc).__name__}: "
                f"{' '.join(str(exc).split())}; re-export the series"
            ) from None
    frames, full_headers = files[path]
    if number > len(frames) or number > len(full_headers):
        raise InputError(f"{label}: {_name(header)} does not exist: '{path}' holds {len(frames)} frame(s)")
    return rescale(frames[number - 1], header, label=label), full_headers[number - 1]


def _read_file(header: Dataset, *, label: str) -> Dataset:
    path = Path(str(header.filename))
    try:
        return pydicom.dcmread(path, force=True)
    except Exception as exc:  # noqa: BLE001 - the file changed or is corrupt since the scan
        raise InputError(f"{label}: cannot read '{path}': {type(exc).__name__}: {' '.join(str(exc).split())}") from None


def _require_decoder(syntax: UID, *, label: str) -> None:
    if not syntax.is_transfer_syntax:
        raise InputError(
            f"{label}: TransferSyntaxUID '{syntax}' is not a DICOM transfer syntax, so the pixel data cannot be "
            "decoded; convert the series to a standard uncompressed transfer syntax (e.g. with dcmconv or gdcmconv)"
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise MissingCodecError(
            f"{label}: pixel data is compressed as '{syntax.name}' ({syntax}), which pydicom cannot decode; "
            "convert the series to an uncompressed transfer syntax (e.g. with dcmdjpeg or gdcmconv)"
        ) from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no decoder plugin"
        raise MissingCodecError(
            f"{label}: pixel data is compressed as '{syntax.name}' ({syntax}) and no installed decoder can read it "
            f"({missing}); {CODECS_FIX}"
        )


def _volume_info(
    first: Dataset, *, series: SeriesIndex, geometry: SeriesGeometry, duplicates_dropped: int
) -> dict[str, Any]:
    meta = getattr(first, "file_meta", None)
    return {
        "source": "dicom",
        "study_uid": series.study_uid,
        "series_uid": series.series_uid,
        "series_number": series.number,
        "series_description": series.description,
        "modality": series.modality,
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "") or ""),
        "manufacturer": printable(str(first.get("Manufacturer", "") or "")),
        "magnetic_field_strength": _optional_number(first, "MagneticFieldStrength", default=None),
        "repetition_time": _optional_number(first, "RepetitionTime", default=None),
        "echo_time": _optional_number(first, "EchoTime", default=None),
        "inversion_time": _optional_number(first, "InversionTime", default=None),
        "transfer_syntax": str(meta.get("TransferSyntaxUID", "")) if meta is not None else "",
        "pixel_spacing": list(geometry.pixel_spacing),
        "slice_spacing": geometry.slice_spacing,
        "duplicates_dropped": duplicates_dropped,
    }


def _numbers(ds: Dataset, keyword: str, count: int, *, label: str) -> list[float]:
    """``count`` numbers of a multi-valued attribute, or an InputError naming file and value."""
    value = ds.get(keyword)
    if value is None or value == "":
        raise InputError(
            f"{label}: {_name(ds)} has no {keyword}; the series cannot be placed in space, "
            "choose another series or re-export it with its geometry"
        )
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InputError(f"{label}: {keyword} {values} in {_name(ds)} is not numeric") from None
    if len(numbers) != count:
        raise InputError(f"{label}: {keyword} {_fmt(numbers)} in {_name(ds)} has {len(numbers)} values, not {count}")
    if not all(np.isfinite(numbers)):
        raise InputError(f"{label}: {keyword} {_fmt(numbers)} in {_name(ds)} is not finite")
    return numbers


def _check_orientation(orientation: list[float], ds: Dataset, *, label: str, tolerance: float) -> None:
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    if (
        abs(np.linalg.norm(row) - 1) > tolerance
        or abs(np.linalg.norm(col) - 1) > tolerance
        or abs(float(row @ col)) > tolerance
    ):
        raise InputError(
            f"{label}: ImageOrientationPatient {_fmt(orientation)} in {_name(ds)} is not two orthogonal unit "
            "vectors; the file's geometry is corrupt"
        )


def _matrix(ds: Dataset, *, label: str) -> tuple[int, int]:
    rows, columns = header_int(ds, "Rows"), header_int(ds, "Columns")
    if rows is None or columns is None:
        raise InputError(f"{label}: {_name(ds)} has no valid Rows/Columns")
    if rows <= 0 or columns <= 0:
        raise InputError(f"{label}: {_name(ds)} has an empty image (Rows {rows}, Columns {columns})")
    return rows, columns


def _whole_number(ds: Dataset, keyword: str, *, default: int, label: str) -> int:
    """An integer attribute, ``default`` when absent or empty; InputError quoting a damaged value."""
    try:
        raw = ds.get(keyword)
    except Exception:  # noqa: BLE001 - pydicom raises many types converting damaged raw values
        raw = "(unreadable)"
    if raw is None or raw == "":
        return default
    number = header_int(ds, keyword)
    if number is None:
        shown = printable(str(raw))[:40]
        raise InputError(
            f"{label}: {keyword} '{shown}' in {_name(ds)} is not a whole number; the file's header is corrupt, "
            "re-export the series"
        )
    return number


def _optional_number(ds: Dataset, keyword: str, *, default: float | None) -> Any:
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _name(ds: Dataset) -> str:
    filename = getattr(ds, "filename", None)
    shown = f"'{filename}'" if filename else f"instance {ds.get('SOPInstanceUID', '?')}"
    number = frame_number(ds)
    return f"frame {number} of {shown}" if number is not None else shown


def _fmt(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(v):.6g}" for v in values) + "]"


__all__ = [
    "CODECS_FIX",
    "LoadedSeries",
    "SeriesGeometry",
    "check_memory",
    "decode_frames",
    "decode_pixels",
    "frame_stacks",
    "load_series",
    "rescale",
    "series_geometry",
]
