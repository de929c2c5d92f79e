"""Write a :class:`~modic.io.volume.Volume` as a standard MR Image Storage series.

Used by the synthetic generator and by tests that need realistic PACS-like
studies. Headers carry the complete patient, study, series, equipment and
MR modules so that derived objects (DICOM SEG, SR) can copy them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    MRImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    generate_uid,
)

from modic.io.volume import LPS_TO_RAS, Volume

UID_PREFIX = "1.2.826.0.1.3680043.10.1543."
"""Root under which synthetic studies get their UIDs (deterministic from the seed)."""


def deterministic_uid(*parts: object) -> UID:
    """A valid DICOM UID derived from ``parts``, identical on every run."""
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[str(p) for p in parts])


@dataclass(frozen=True)
class PatientStudy:
    """Patient and study attributes shared by all series of one synthetic study."""

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_uid: str
    study_date: str = "20240115"
    study_time: str = "093000"
    accession_number: str = "SYN0001"
    study_id: str = "1"
    study_description: str = "MRI LUMBAR SPINE"
    referring_physician: str = "SYNTHETIC^REFERRER"
    institution: str = "modic synthetic hospital"
    frame_of_reference_uid: str = ""

    @property
    def age(self) -> str:
        born = dt.datetime.strptime(self.birth_date, "%Y%m%d").date()
        seen = dt.datetime.strptime(self.study_date, "%Y%m%d").date()
        years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
        return f"{years:03d}Y"


@dataclass(frozen=True)
class SeriesProtocol:
    """Acquisition attributes of one MR series."""

    description: str
    number: int
    repetition_time: float
    echo_time: float
    inversion_time: float | None = None
    flip_angle: float = 90.0
    scanning_sequence: Sequence[str] = ("SE",)
    sequence_variant: Sequence[str] = ("SK",)
    scan_options: Sequence[str] = ("",)
    echo_train_length: int = 4
    field_strength: float = 1.5
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "ND")
    manufacturer: str = "modic"
    model_name: str = "SyntheticMR"
    series_uid: str = field(default="")


def write_series(
    volume: Volume,
    folder: str | Path,
    *,
    patient: PatientStudy,
    protocol: SeriesProtocol,
    transfer_syntax: str = ExplicitVRLittleEndian,
    rescale: tuple[float, float] | None = None,
    file_names: Sequence[str] | None = None,
    first_instance: int = 1,
    slice_thickness: float | None = None,
) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice (along the third array axis).

    Args:
        volume: image whose values are stored as unsigned 16-bit pixels.
        folder: output folder (created).
        patient: patient/study attributes.
        protocol: series attributes; ``series_uid`` defaults to a UID derived
            from the study UID and series number.
        transfer_syntax: any syntax pydicom can encode (uncompressed, RLE,
            JPEG 2000 or JPEG-LS with the codec extra).
        rescale: ``(slope, intercept)`` written as RescaleSlope/Intercept; the
            stored pixels are ``(value - intercept) / slope``.
        file_names: names for the files in slice order (default ``IM0001.dcm`` ...); may hold
            sub-folders, which must exist.
        first_instance: InstanceNumber of the first slice, so several volumes (localizer
            planes, axial blocks) can form one series.
        slice_thickness: SliceThickness in mm (default 0.9 x the slice spacing).

    Returns:
        Paths of the written files in slice order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = protocol.series_uid or deterministic_uid(patient.study_uid, "series", protocol.number)
    frame_uid = patient.frame_of_reference_uid or deterministic_uid(patient.study_uid, "frame")
    affine_lps = LPS_TO_RAS @ volume.affine
    row_vec = affine_lps[:3, 0]
    col_vec = affine_lps[:3, 1]
    col_spacing = float(np.linalg.norm(row_vec))
    row_spacing = float(np.linalg.norm(col_vec))
    normal = affine_lps[:3, 2]
    slice_spacing = float(np.linalg.norm(normal))
    orientation = [*(row_vec / col_spacing), *(col_vec / row_spacing)]
    unit_normal = np.cross(orientation[:3], orientation[3:])

    slope, intercept = rescale if rescale else (1.0, 0.0)
    stored = np.rint((volume.array - intercept) / slope)
    stored = np.clip(stored, 0, 65535).astype(np.uint16)
    paths: list[Path] = []
    n_slices = volume.shape[2]
    thickness = slice_spacing * 0.9 if slice_thickness is None else float(slice_thickness)
    for k in range(n_slices):
        position = affine_lps @ np.array([0.0, 0.0, float(k), 1.0])
        ds = _slice_dataset(
            pixels=stored[:, :, k].T,
            patient=patient,
            protocol=protocol,
            series_uid=series_uid,
            frame_uid=frame_uid,
            instance=first_instance + k,
            position=position[:3],
            orientation=orientation,
            pixel_spacing=(row_spacing, col_spacing),
            slice_spacing=slice_spacing,
            slice_thickness=thickness,
            slice_location=float(np.dot(position[:3], unit_normal)),
            rescale=rescale,
        )
        name = file_names[k] if file_names else f"IM{first_instance + k:04d}.dcm"
        path = folder / name
        if transfer_syntax != ExplicitVRLittleEndian:
            ds.compress(transfer_syntax, encoding_plugin=_encoder_for(transfer_syntax))
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced_series(
    sources: Sequence[str | Path],
    folder: str | Path,
    *,
    enhanced_mr: bool = True,
    files: int = 1,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Path]:
    """Convert a classic MR series into multi-frame files, as current scanners export it.

    highdicom's legacy converter (:class:`highdicom.legacy.LegacyConvertedEnhancedMRImage`)
    builds the multi-frame object from the classic files. With ``enhanced_mr``
    it is then stored as Enhanced MR Image Storage, whose echo and timing
    parameters live in the MR Echo, MR Timing and Related Parameters and MR
    Modifier functional groups and whose ScanningSequence becomes
    EchoPulseSequence (as Siemens XA and Philips write them); otherwise it
    stays a Legacy Converted Enhanced MR image. ``files`` > 1 splits the frames
    over that many files of one series (a multi-file multi-frame series).

    Returns:
        The written files.
    """
    import pydicom
    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    classic = [pydicom.dcmread(path) for path in sources]
    first = classic[0]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = deterministic_uid(first.SeriesInstanceUID, "enhanced", enhanced_mr, files)
    order = sorted(range(len(classic)), key=lambda i: int(classic[i].InstanceNumber))
    parts = [order[i::files] for i in range(files)]
    paths: list[Path] = []
    for number, part in enumerate(parts, start=1):
        image = LegacyConvertedEnhancedMRImage(
            [classic[i] for i in part],
            series_instance_uid=series_uid,
            series_number=int(first.SeriesNumber),
            sop_instance_uid=deterministic_uid(series_uid, "instance", number),
            instance_number=number,
            transfer_syntax_uid=ExplicitVRLittleEndian,
        )
        if enhanced_mr:
            _as_enhanced_mr(image, first)
        path = folder / f"MF{number:04d}.dcm"
        if transfer_syntax != ExplicitVRLittleEndian:
            image.compress(transfer_syntax, encoding_plugin=_encoder_for(transfer_syntax))
        image.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _as_enhanced_mr(image: Dataset, classic: Dataset) -> None:
    """Move the classic MR acquisition attributes of a legacy-converted image into Enhanced MR functional groups."""
    from pydicom.uid import EnhancedMRImageStorage

    image.SOPClassUID = EnhancedMRImageStorage
    image.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    shared = image.SharedFunctionalGroupsSequence[0]
    unassigned = shared.get("UnassignedSharedConvertedAttributesSequence")
    if unassigned:
        item = unassigned[0]
        for keyword in ("ScanningSequence", "SequenceVariant", "ScanOptions", "RepetitionTime", "EchoTime",
                        "InversionTime", "FlipAngle", "EchoTrainLength"):
            if keyword in item:
                delattr(item, keyword)
    timing = Dataset()
    timing.RepetitionTime = float(classic.RepetitionTime)
    timing.FlipAngle = float(classic.get("FlipAngle", 90.0))
    timing.EchoTrainLength = int(classic.get("EchoTrainLength", 1))
    shared.MRTimingAndRelatedParametersSequence = [timing]
    echo = Dataset()
    echo.EffectiveEchoTime = float(classic.EchoTime)
    shared.MREchoSequence = [echo]
    modifier = Dataset()
    inversion = classic.get("InversionTime")
    modifier.InversionRecovery = "YES" if inversion is not None else "NO"
    if inversion is not None:
        modifier.InversionTimes = [float(inversion)]
    shared.MRModifierSequence = [modifier]
    sequence = {str(v).upper() for v in (classic.get("ScanningSequence") or [])}
    image.EchoPulseSequence = "BOTH" if {"SE", "GR"} <= sequence else "GRADIENT" if "GR" in sequence else "SPIN"


def _encoder_for(transfer_syntax: str) -> str:
    """pydicom encoding plugin for a compressed syntax ('' lets pydicom choose)."""
    return "pylibjpeg" if UID(transfer_syntax).name.startswith("JPEG 2000") else ""


def _slice_dataset(
    *,
    pixels: np.ndarray,
    patient: PatientStudy,
    protocol: SeriesProtocol,
    series_uid: str,
    frame_uid: str,
    instance: int,
    position: np.ndarray,
    orientation: list[float],
    pixel_spacing: tuple[float, float],
    slice_spacing: float,
    slice_thickness: float,
    slice_location: float,
    rescale: tuple[float, float] | None,
) -> Dataset:
    sop_uid = deterministic_uid(series_uid, "instance", instance)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(protocol.image_type)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = patient.study_date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = patient.study_time
    ds.AccessionNumber = patient.accession_number
    ds.Modality = "MR"
    ds.Manufacturer = protocol.manufacturer
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = patient.referring_physician
    ds.StudyDescription = patient.study_description
    ds.SeriesDescription = protocol.description
    ds.ManufacturerModelName = protocol.model_name
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = patient.age
    ds.BodyPartExamined = "LSPINE"
    ds.ScanningSequence = list(protocol.scanning_sequence)
    ds.SequenceVariant = list(protocol.sequence_variant)
    ds.ScanOptions = list(protocol.scan_options)
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = _ds(slice_thickness)
    ds.RepetitionTime = _ds(protocol.repetition_time)
    ds.EchoTime = _ds(protocol.echo_time)
    if protocol.inversion_time is not None:
        ds.InversionTime = _ds(protocol.inversion_time)
    ds.NumberOfAverages = 2
    ds.MagneticFieldStrength = _ds(protocol.field_strength)
    ds.SpacingBetweenSlices = _ds(slice_spacing)
    ds.EchoTrainLength = protocol.echo_train_length
    ds.FlipAngle = _ds(protocol.flip_angle)
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = patient.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = patient.study_id
    ds.SeriesNumber = protocol.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(v, digits=8) for v in orientation]
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(slice_location)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleIntercept = _ds(rescale[1])
        ds.RescaleSlope = _ds(rescale[0])
        ds.RescaleType = "US"
    high = float(np.percentile(pixels, 99.5)) if pixels.size else 1.0
    ds.WindowCenter = _ds(high / 2)
    ds.WindowWidth = _ds(max(high, 1.0))
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def _ds(value: float, *, digits: int = 6) -> str:
    """Format a float as a DICOM Decimal String (at most 16 characters)."""
    text = f"{float(value):.{digits}g}"
    if len(text) > 16:
        text = f"{float(value):.{max(digits - (len(text) - 16), 1)}g}"
    return text

