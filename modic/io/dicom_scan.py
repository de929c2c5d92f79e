"""Find the DICOM images under a folder and group them by study and series.

A PACS export is a tree of nested folders holding files with or without
extensions, a DICOMDIR, non-DICOM files and sometimes several studies. Only
headers are read here (``stop_before_pixels`` and ``specific_tags``). Files
are grouped by StudyInstanceUID, then SeriesInstanceUID, never by folder.

Multi-frame images (Enhanced MR, Legacy Converted Enhanced MR, one or several
files per series) are indexed frame by frame: each frame becomes a
:class:`FrameHeader` holding the classic attributes (ImagePositionPatient,
EchoTime, RescaleSlope ...) that the standard's shared and per-frame
functional groups give that frame, so that series choice, physics rules and
geometry checks are the same for classic and multi-frame series.
Anything that cannot be used is recorded in :attr:`FolderScan.skipped` with
a reason; scanning never fails because of one bad file.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from modic.errors import InputError
from modic.progress import progress
from modic.settings import IoSettings, shipped_settings

log = logging.getLogger("modic.io.dicom_scan")

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

HEADER_KEYWORDS: tuple[str, ...] = (
    "SpecificCharacterSet",
    "ImageType",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "Modality",
    "Manufacturer",
    "StudyDescription",
    "SeriesDescription",
    "ManufacturerModelName",
    "PatientID",
    "BodyPartExamined",
    "ContrastBolusAgent",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "MRAcquisitionType",
    "SequenceName",
    "SliceThickness",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "EchoNumbers",
    "MagneticFieldStrength",
    "SpacingBetweenSlices",
    "EchoTrainLength",
    "ProtocolName",
    "FlipAngle",
    "PatientPosition",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyID",
    "SeriesNumber",
    "AcquisitionNumber",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "FrameOfReferenceUID",
    "SliceLocation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "PixelSpacing",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleIntercept",
    "RescaleSlope",
    "SeriesDate",
    "AcquisitionDate",
    "AcquisitionDateTime",
    "EchoPulseSequence",
    "SpectrallySelectedSuppression",
    "DimensionIndexSequence",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)
"""Header attributes kept for classification, selection and geometry checks."""

FUNCTIONAL_GROUP_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("PlanePositionSequence", "ImagePositionPatient", "ImagePositionPatient"),
    ("PlaneOrientationSequence", "ImageOrientationPatient", "ImageOrientationPatient"),
    ("PixelMeasuresSequence", "PixelSpacing", "PixelSpacing"),
    ("PixelMeasuresSequence", "SliceThickness", "SliceThickness"),
    ("PixelMeasuresSequence", "SpacingBetweenSlices", "SpacingBetweenSlices"),
    ("PixelValueTransformationSequence", "RescaleSlope", "RescaleSlope"),
    ("PixelValueTransformationSequence", "RescaleIntercept", "RescaleIntercept"),
    ("MRTimingAndRelatedParametersSequence", "RepetitionTime", "RepetitionTime"),
    ("MRTimingAndRelatedParametersSequence", "FlipAngle", "FlipAngle"),
    ("MRTimingAndRelatedParametersSequence", "EchoTrainLength", "EchoTrainLength"),
    ("MREchoSequence", "EffectiveEchoTime", "EchoTime"),
    ("MRModifierSequence", "InversionTimes", "InversionTime"),
    ("MRImageFrameTypeSequence", "FrameType", "FrameType"),
    ("FrameContentSequence", "DimensionIndexValues", "DimensionIndexValues"),
    ("FrameContentSequence", "TemporalPositionIndex", "TemporalPositionIndex"),
    ("FrameContentSequence", "StackID", "StackID"),
    ("FrameContentSequence", "InStackPositionNumber", "InStackPositionNumber"),
    ("FrameContentSequence", "FrameAcquisitionDateTime", "AcquisitionDateTime"),
)
"""``(functional group sequence, attribute of its item, classic keyword it becomes)`` for multi-frame images.

The per-frame group wins over the shared one (PS3.3 C.7.6.16). The MR Echo
and MR Modifier macros hold EffectiveEchoTime and InversionTimes where
classic MR images hold EchoTime and InversionTime.
"""
UNASSIGNED_GROUPS = ("UnassignedSharedConvertedAttributesSequence", "UnassignedPerFrameConvertedAttributesSequence")
"""Legacy Converted Enhanced images keep classic attributes without a functional group here (PS3.3 C.7.6.16.2.24)."""
SPATIAL_DIMENSIONS = (0x00209057, 0x00200032)
"""Dimension index pointers that order frames in space (InStackPositionNumber, ImagePositionPatient);
the other dimensions (echo, time, image type ...) tell stacks of frames apart."""
ECHO_PULSE_SEQUENCE = {"SPIN": ("SE",), "GRADIENT": ("GR",), "BOTH": ("SE", "GR")}
"""Enhanced MR EchoPulseSequence as the classic ScanningSequence values the physics rules read."""


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not used, and why.

    ``kind`` is one of ``not_dicom``, ``dicomdir``, ``unreadable``, ``corrupt``,
    ``not_image`` or ``duplicate``. ``study_uid``/``series_uid`` are set when the
    header could still be read (e.g. truncated pixel data).
    """

    path: str
    kind: str
    reason: str
    study_uid: str = ""
    series_uid: str = ""

    def to_dict(self) -> dict[str, str]:
        entry = {"path": self.path, "kind": self.kind, "reason": self.reason}
        if self.series_uid:
            entry["series_uid"] = self.series_uid
        return entry


class FrameHeader(Dataset):
    """The header of one frame of a multi-frame image, in classic attributes.

    It holds the file's top-level attributes, then those of the shared and the
    frame's own functional groups under their classic keywords
    (:data:`FUNCTIONAL_GROUP_ATTRIBUTES`). ``filename`` is the file;
    ``frame_number`` the 1-based frame (DICOM's ReferencedFrameNumber);
    ``stack_key`` tells apart stacks of frames at the same positions (echoes,
    time points, image types): frames with equal keys form one volume.
    """

    frame_number: int
    stack_key: tuple[Any, ...]


def frame_number(ds: Dataset) -> int | None:
    """The 1-based frame number of a :class:`FrameHeader`; None for a classic single-frame header."""
    return ds.frame_number if isinstance(ds, FrameHeader) else None


def is_multiframe(ds: Dataset) -> bool:
    """Whether ``ds`` is a multi-frame image (functional groups or more than one frame)."""
    return (
        "PerFrameFunctionalGroupsSequence" in ds
        or "SharedFunctionalGroupsSequence" in ds
        or (header_int(ds, "NumberOfFrames") or 1) > 1
    )


def expand_frames(ds: Dataset) -> list[Dataset]:
    """The headers of ``ds`` as indexed: one :class:`FrameHeader` per frame of a multi-frame image, else ``[ds]``."""
    if not is_multiframe(ds):
        return [ds]
    frames = max(header_int(ds, "NumberOfFrames") or 1, 1)
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    spatial = _spatial_dimension_positions(ds)
    top = Dataset()
    for element in ds:
        if element.keyword not in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            top.add(element)
    pulse = str(ds.get("EchoPulseSequence", "") or "").upper()
    suppression = str(ds.get("SpectrallySelectedSuppression", "") or "").upper()
    headers: list[Dataset] = []
    for index in range(frames):
        header = FrameHeader()
        header.update(top)
        own = per_frame[index] if index < len(per_frame) else None
        for group in (shared, own):
            if group is not None:
                _apply_group(header, group, top=top)
        if pulse in ECHO_PULSE_SEQUENCE and "ScanningSequence" not in header:
            modifier = _group_value(own, shared, "MRModifierSequence", "InversionRecovery")
            header.ScanningSequence = [*ECHO_PULSE_SEQUENCE[pulse], *(["IR"] if str(modifier).upper() == "YES" else [])]
        if suppression.startswith("FAT") and "ScanOptions" not in header:
            header.ScanOptions = "FS"
        header.NumberOfFrames = 1
        header.filename = ds.filename
        header.frame_number = index + 1
        header.stack_key = _stack_key(header, spatial=spatial)
        headers.append(header)
    return headers


def _first_item(ds: Dataset | None, keyword: str) -> Dataset | None:
    value = ds.get(keyword) if ds is not None else None
    return value[0] if value else None


def _group_value(own: Dataset | None, shared: Dataset | None, sequence: str, keyword: str) -> Any:
    for group in (own, shared):
        item = _first_item(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _apply_group(header: Dataset, group: Dataset, *, top: Dataset) -> None:
    """Copy the attributes of one functional-group item into ``header`` under their classic keywords.

    Unassigned converted attributes never replace a top-level attribute (e.g. the
    SeriesNumber of the classic source of a Legacy Converted image).
    """
    for sequence in UNASSIGNED_GROUPS:
        item = _first_item(group, sequence)
        if item is not None:
            for element in item:
                if element.tag not in top:
                    header[element.tag] = element
    for sequence, keyword, classic in FUNCTIONAL_GROUP_ATTRIBUTES:
        item = _first_item(group, sequence)
        if item is None or keyword not in item:
            continue
        value = item.get(keyword)
        if classic == "InversionTime":  # InversionTimes holds one value per inversion pulse; the first is TI
            values = _as_list(value)
            if not values:
                continue
            value = values[0]
        setattr(header, classic, value)


def _as_list(value: Any) -> list[Any]:
    """A multi-valued attribute as a list (a single value as a list of one)."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]


def _spatial_dimension_positions(ds: Dataset) -> tuple[int, ...]:
    """Positions in DimensionIndexValues of the dimensions that order frames in space."""
    dimensions = ds.get("DimensionIndexSequence") or []
    return tuple(
        position
        for position, item in enumerate(dimensions)
        if int(item.get("DimensionIndexPointer", 0) or 0) in SPATIAL_DIMENSIONS
    )


def _stack_key(header: Dataset, *, spatial: tuple[int, ...]) -> tuple[Any, ...]:
    """What tells this frame's stack from stacks of other echoes, times or image types at the same positions."""
    values = header.get("DimensionIndexValues")
    if values is not None and spatial:
        return tuple(int(v) for position, v in enumerate(_as_list(values)) if position not in spatial)
    echo = header.get("EchoTime")
    return (
        header_int(header, "TemporalPositionIndex") or 0,
        float(echo) if echo not in (None, "") else 0.0,
        tuple(str(v) for v in (header.get("FrameType") or [])),
    )


@dataclass(frozen=True)
class SeriesIndex:
    """The instances of one series (header-only datasets; ``dataset.filename`` is the file).

    A multi-frame file gives one :class:`FrameHeader` per frame. Instances are
    in file-path (then frame) order; slice order is decided by geometry when the
    volume is built (:mod:`modic.io.dicom_volume`), never by InstanceNumber.
    """

    study_uid: str
    series_uid: str
    instances: tuple[Dataset, ...]
    corrupt_files: tuple[SkippedFile, ...] = ()

    @property
    def first(self) -> Dataset:
        return self.instances[0]

    @property
    def paths(self) -> tuple[Path, ...]:
        """The series' files, each once."""
        return tuple(dict.fromkeys(Path(str(ds.filename)) for ds in self.instances))

    @property
    def number(self) -> int | None:
        return header_int(self.first, "SeriesNumber")

    @property
    def description(self) -> str:
        """SeriesDescription (ProtocolName when empty) as one printable line."""
        text = str(self.first.get("SeriesDescription", "") or "") or str(self.first.get("ProtocolName", "") or "")
        return printable(text)

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "")

    @property
    def label(self) -> str:
        """How messages name this series: number, description and UID."""
        return series_label(self.number, self.description, self.series_uid)


@dataclass(frozen=True)
class StudyIndex:
    """One study (one StudyInstanceUID) wherever its files lie under the scanned root."""

    study_uid: str
    root: Path
    series: tuple[SeriesIndex, ...]
    study_date: str = ""
    study_description: str = ""
    accession_number: str = ""

    def get(self, series_uid: str) -> SeriesIndex | None:
        """The series with this SeriesInstanceUID, or None."""
        for series in self.series:
            if series.series_uid == series_uid:
                return series
        return None

    @property
    def n_instances(self) -> int:
        """Images (frames of multi-frame files count one each)."""
        return sum(len(s.instances) for s in self.series)

    def summary(self) -> str:
        """One line naming the study without patient identifiers."""
        parts = [self.study_uid]
        if self.study_date:
            parts.append(f"date {self.study_date}")
        if self.study_description:
            parts.append(f"'{self.study_description}'")
        parts.append(f"{len(self.series)} series, {self.n_instances} images")
        return " ".join(parts)


@dataclass(frozen=True)
class FolderScan:
    """Result of scanning a folder: the studies found and the files not used."""

    root: Path
    studies: tuple[StudyIndex, ...]
    skipped: tuple[SkippedFile, ...] = field(default=())
    files_seen: int = 0

    def skipped_summary(self) -> dict[str, int]:
        """Number of skipped files per kind."""
        counts: dict[str, int] = {}
        for item in self.skipped:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        return counts


def header_int(ds: Dataset, keyword: str) -> int | None:
    """An integer attribute as one whole number; None when absent, empty, multi-valued, fractional or unreadable."""
    try:
        value = ds.get(keyword)
        number = float(value)
    except Exception:  # noqa: BLE001 - pydicom raises many types converting damaged raw values
        return None
    if not math.isfinite(number) or not number.is_integer():
        return None
    return int(number)


def printable(text: str) -> str:
    """Header text as one line without control characters (header strings are data)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def series_label(number: int | None, description: str, series_uid: str) -> str:
    """``series 3 't1_tse_sag' (1.2.3...)``: how every message names a series.

    Without ``series_uid`` (``series 3 't1_tse_sag'``) for warnings logged by a
    successful analysis, whose logs carry no UIDs.
    """
    shown = f"series {number}" if number is not None else "series"
    return f"{shown} '{description}' ({series_uid})" if series_uid else f"{shown} '{description}'"


def scan_studies(root: str | Path, *, config: IoSettings | None = None) -> list[StudyIndex]:
    """All studies under ``root``, one :class:`StudyIndex` per StudyInstanceUID.

    Skipped files are logged; use :func:`scan_folder` to get them as data.
    """
    scan = scan_folder(root, config=config)
    for kind, count in sorted(scan.skipped_summary().items()):
        log.info("%d file(s) skipped under %s: %s", count, scan.root, kind)
    return list(scan.studies)


def scan_folder(root: str | Path, *, config: IoSettings | None = None) -> FolderScan:
    """Read the headers of every file under ``root`` and group the images by study and series.

    Raises:
        InputError: ``root`` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(f"study folder '{root}' does not exist; give the folder exported from the PACS")
    if not root.is_dir():
        raise InputError(f"'{root}' is not a folder; give the folder holding the study's DICOM files")
    settings = config if config is not None else shipped_settings().io
    follow = settings.scan.follow_symlinks

    skipped: list[SkippedFile] = []
    files = list(_walk_files(root, follow_symlinks=follow, skipped=skipped))
    headers: list[Dataset] = []
    for path in progress(files, desc="reading DICOM headers", unit="file", transient=True):
        result = _read_header(path)
        if isinstance(result, SkippedFile):
            skipped.append(result)
            continue
        frames = _frame_headers(result, max_voxels=int(settings.memory.max_voxels))
        if isinstance(frames, SkippedFile):
            skipped.append(frames)
        else:
            headers.extend(frames)
    studies = _group(root, headers, skipped)
    log.debug("scanned %s: %d files, %d studies, %d skipped", root, len(files), len(studies), len(skipped))
    return FolderScan(root=root, studies=studies, skipped=tuple(skipped), files_seen=len(files))


def _walk_files(root: Path, *, follow_symlinks: bool, skipped: list[SkippedFile]) -> Iterator[Path]:
    """Every regular file under ``root`` once, in a stable order, without symlink loops."""
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real_dir)
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in seen_dirs)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                real = os.path.realpath(path)
                if not os.path.isfile(real):
                    skipped.append(SkippedFile(str(path), "unreadable", "broken link or not a regular file"))
                    continue
            except OSError as exc:
                skipped.append(SkippedFile(str(path), "unreadable", _one_line(exc)))
                continue
            if real in seen_files:
                continue
            seen_files.add(real)
            yield path


def _read_header(path: Path) -> Dataset | SkippedFile:
    """The header of one file, or why it cannot be used."""
    try:
        with open(path, "rb") as handle:
            preamble = handle.read(132)
            if len(preamble) < 132 or preamble[128:132] != b"DICM":
                if not _looks_like_raw_dicom(preamble):
                    return SkippedFile(str(path), "not_dicom", "no DICOM preamble ('DICM' at byte 128)")
            handle.seek(0)
            with warnings.catch_warnings():
                # Odd files make pydicom warn; the outcome is recorded in the scan instead.
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(
                    handle,
                    stop_before_pixels=True,
                    specific_tags=list(HEADER_KEYWORDS),
                    force=not preamble[128:132] == b"DICM",
                )
            pixel_offset = handle.tell()
        size = path.stat().st_size
    except InvalidDicomError as exc:
        return SkippedFile(str(path), "not_dicom", _one_line(exc))
    except OSError as exc:
        return SkippedFile(str(path), "unreadable", _one_line(exc))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files; record, never crash
        return SkippedFile(str(path), "corrupt", f"cannot parse header: {type(exc).__name__}: {_one_line(exc)}")

    meta = getattr(ds, "file_meta", None)
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    if media_class == MEDIA_STORAGE_DIRECTORY:
        return SkippedFile(str(path), "dicomdir", "DICOMDIR (media storage directory), not an image")
    missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if not str(ds.get(k, "") or "")]
    if len(missing) == 3:
        return SkippedFile(str(path), "corrupt", "no study, series or instance UID: damaged or truncated header")
    if missing:
        return SkippedFile(str(path), "corrupt", f"no {'/'.join(missing)}")
    if "Rows" not in ds or "Columns" not in ds:
        sop = UID(str(ds.get("SOPClassUID", "") or ""))
        return SkippedFile(str(path), "not_image", f"no pixel data attributes (SOP class {sop.name or 'unknown'})")
    truncation = _truncation(ds, remaining=size - pixel_offset)
    if truncation:
        return SkippedFile(
            str(path), "corrupt", truncation, study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID)
        )
    ds.filename = str(path)
    return ds


def _frame_headers(ds: Dataset, *, max_voxels: int) -> list[Dataset] | SkippedFile:
    """:func:`expand_frames` of one file, or why its frames cannot be indexed.

    A frame count that its per-frame functional groups contradict, or that
    exceeds the memory guard, marks a damaged or hostile header (a compressed
    file's length cannot tell): such a file is skipped before one frame is indexed.
    """
    path, where = str(ds.filename), {"study_uid": str(ds.StudyInstanceUID), "series_uid": str(ds.SeriesInstanceUID)}
    frames = header_int(ds, "NumberOfFrames") or 1
    try:
        if not is_multiframe(ds):
            return [ds]  # a single-frame image: the series' memory guard speaks at loading
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame is not None and len(per_frame) != frames:
            return SkippedFile(
                path, "corrupt", f"NumberOfFrames {frames} but {len(per_frame)} per-frame functional group item(s)",
                **where,
            )
        voxels = frames * (header_int(ds, "Rows") or 0) * (header_int(ds, "Columns") or 0)
        if voxels > max_voxels:
            return SkippedFile(
                path, "corrupt", f"NumberOfFrames {frames} x Rows x Columns = {voxels:,} voxels is above the memory "
                f"guard of {max_voxels:,} (memory.max_voxels in configs/io.yaml)", **where,
            )
        return expand_frames(ds)
    except Exception as exc:  # noqa: BLE001 - damaged nested sequences raise many types; record, never crash
        return SkippedFile(
            path, "corrupt", f"cannot read the frame functional groups: {type(exc).__name__}: {_one_line(exc)}",
            **where,
        )


def _looks_like_raw_dicom(start: bytes) -> bool:
    """A Part-10 file without preamble starts with a group 0x0002 or 0x0008 little-endian tag."""
    return (
        len(start) >= 8
        and start[:2] in (b"\x02\x00", b"\x08\x00")
        and start[2:4]
        in (
            b"\x00\x00",
            b"\x01\x00",
            b"\x05\x00",
            b"\x08\x00",
            b"\x10\x00",
            b"\x16\x00",
        )
    )


def _truncation(ds: Dataset, *, remaining: int) -> str:
    """Why the native pixel data of ``ds`` cannot be complete ('' when it can)."""
    meta = getattr(ds, "file_meta", None)
    syntax = (
        UID(str(meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))) if meta is not None else UID("1.2.840.10008.1.2")
    )
    if not syntax.is_transfer_syntax or syntax.is_compressed or syntax.is_deflated:
        return ""  # encapsulated, deflated or unknown encoding: file offsets say nothing; decoding will tell
    rows, columns = header_int(ds, "Rows"), header_int(ds, "Columns")
    if rows is None or columns is None:
        return ""  # no usable matrix: series selection and pixel decoding say so
    expected = (
        rows
        * columns
        * (header_int(ds, "SamplesPerPixel") or 1)
        * (header_int(ds, "NumberOfFrames") or 1)
        * -(-(header_int(ds, "BitsAllocated") or 16) // 8)
    )
    if remaining <= 0:
        return "file ends before the pixel data"
    if remaining < expected:
        return f"pixel data truncated: {remaining} bytes left in the file, {expected} needed for Rows x Columns"
    return ""


def _group(root: Path, headers: list[Dataset], skipped: list[SkippedFile]) -> tuple[StudyIndex, ...]:
    by_study: dict[str, dict[str, list[Dataset]]] = {}
    for ds in headers:
        by_study.setdefault(str(ds.StudyInstanceUID), {}).setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    studies: list[StudyIndex] = []
    for study_uid, by_series in by_study.items():
        series_list: list[SeriesIndex] = []
        for series_uid, instances in by_series.items():
            unique: dict[tuple[str, int | None], Dataset] = {}
            for ds in sorted(instances, key=lambda d: (str(d.filename), frame_number(d) or 0)):
                sop = (str(ds.SOPInstanceUID), frame_number(ds))
                if sop in unique:
                    if sop[1] in (None, 1):
                        skipped.append(
                            SkippedFile(
                                str(ds.filename), "duplicate", f"same SOPInstanceUID as {unique[sop].filename}"
                            )
                        )
                    continue
                unique[sop] = ds
            corrupt = tuple(item for item in skipped if item.study_uid == study_uid and item.series_uid == series_uid)
            series_list.append(
                SeriesIndex(
                    study_uid=study_uid, series_uid=series_uid, instances=tuple(unique.values()), corrupt_files=corrupt
                )
            )
        series_list.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.series_uid))
        first = series_list[0].first
        studies.append(
            StudyIndex(
                study_uid=study_uid,
                root=root,
                series=tuple(series_list),
                study_date=printable(str(first.get("StudyDate", "") or "")),
                study_description=printable(str(first.get("StudyDescription", "") or "")),
                accession_number=printable(str(first.get("AccessionNumber", "") or "")),
            )
        )
    studies.sort(key=lambda s: (s.study_date, s.study_uid))
    return tuple(studies)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
