"""``seg.dcm``: a DICOM Segmentation of the analysis, on the frames of the source T1 series.

One BINARY segment per named vertebral body, per named disc, per graded
endplate marrow band and per reference marrow region. BINARY (not LABELMAP)
because the segments overlap: every band and reference region lies inside its
vertebral body. One segment per named structure (rather than one "vertebral
body" segment told apart by tracking ids) because viewers list and colour
segments by label, so a reader sees "L5 vertebral body" directly, and because
the SR (:mod:`modic.report.dicom_sr`) references single endplate bands.

The label maps live on the T1 grid (axes i = column, j = row, k = slice in
source slice order), so frame ``k`` of segment ``s`` is ``map[:, :, k].T == value``
and corresponds to ``t1_source_headers[k]``. When the T1 is the frames of
multi-frame images (Enhanced MR, in one file or spread over several), the SEG
references those images frame by frame (ReferencedFrameNumber in its
derivation image references). Empty
frames are omitted; a structure without any voxel gets no segment.

The codes are listed in ``docs/report.md`` (SEG segments). The object copies
the patient and study modules of the source series: that is how DICOM attaches
it to the study (see the privacy section of ``docs/report.md``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.valuerep import DSfloat
from scipy import ndimage

from modic import __version__, atomic
from modic.errors import AnalysisError
from modic.io.dicom_scan import frame_number
from modic.levels import SpineAnatomy
from modic.levels.names import endplate_parts
from modic.results import StudyAnalysis
from modic.report.figures import DISC_COLOUR, MODIC_COLOURS, UNDETERMINED_COLOUR, VERTEBRA_COLOUR

SERIES_NUMBER = 9101
SERIES_DESCRIPTION = "modic segmentation (research use only)"
CONTENT_LABEL = "MODIC_SEG"
MANUFACTURER = "modic"

VERTEBRAL_BODY = Code("3572006", "SCT", "Vertebral body")
"""SNOMED CT "Vertebral body" (body structure); pydicom's dictionary has no entry for it."""
INTERVERTEBRAL_DISC = Code("360499006", "SCT", "Intervertebral disc")
"""Used only for a disc whose level has no code in DICOM CID 7604."""
SACRUM = codes.SCT.Sacrum
"""S1 has no code in DICOM CID 7603 (Vertebra); its body is coded as part of the sacrum."""

STRUCTURE_COLOURS: dict[str, tuple[int, int, int]] = {
    "vertebra": VERTEBRA_COLOUR,
    "disc": DISC_COLOUR,
    "reference": (170, 170, 170),
}
"""RGB display colours; bands take their Modic type's colour (:data:`~modic.report.figures.MODIC_COLOURS`)."""


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: where its voxels are (``attribute`` of the anatomy equal to ``value``) and how it is coded.

    Attributes:
        number: segment number (1-based, in writing order).
        kind: ``vertebra``, ``disc``, ``endplate`` or ``reference``.
        name: anatomical name (``"L5"``, ``"L4-L5"``, ``"L5 superior"``).
        label: SegmentLabel shown by viewers.
        tracking_id: TrackingID, also used by the SR to find the segment.
        attribute: label map of :class:`~modic.levels.SpineAnatomy` holding it.
        value: its value in that map.
    """

    number: int
    kind: str
    name: str
    label: str
    tracking_id: str
    attribute: str
    value: int


def endplate_tracking_id(endplate: str) -> str:
    """Tracking identifier of an endplate band, shared by SEG and SR: ``"L5 superior endplate"``."""
    return f"{endplate} endplate"


def vertebra_code(vertebra: str) -> Code:
    """The DICOM CID 7603 code of a vertebra (the sacrum for S1)."""
    if vertebra == "S1":
        return SACRUM
    code = getattr(codes.SCT, f"{vertebra}Vertebra", None)
    if code is None:
        raise AnalysisError(f"vertebra name {vertebra!r} has no SNOMED CT code in DICOM CID 7603; cannot write the SEG")
    return code


def disc_code(disc: str) -> Code:
    """The DICOM CID 7604 code of a disc (``"L4-L5"`` -> L4/L5 disc), else the generic intervertebral disc."""
    upper, _, lower = disc.partition("-")
    return getattr(codes.SCT, f"{upper}{lower}Disc", None) or INTERVERTEBRAL_DISC


def segment_specs(anatomy: SpineAnatomy) -> list[SegmentSpec]:
    """Segments in writing order: vertebrae and discs (caudal first), endplate bands, reference regions."""
    present = {
        attribute: set(np.unique(getattr(anatomy, attribute)).tolist()) - {0}
        for attribute in ("vertebra_map", "disc_map", "endplate_map", "reference_map")
    }
    rows: list[tuple[str, str, str, str, str, int]] = []
    for structure in anatomy.vertebrae:
        if structure.label in present["vertebra_map"]:
            rows.append(("vertebra", structure.name, f"{structure.name} vertebral body", structure.name,
                         "vertebra_map", structure.label))
    for structure in anatomy.discs:
        if structure.label in present["disc_map"]:
            rows.append(("disc", structure.name, f"{structure.name} disc", structure.name, "disc_map", structure.label))
    for region in anatomy.endplates:
        if region.label in present["endplate_map"]:
            rows.append(("endplate", region.name, f"{region.name} endplate marrow", endplate_tracking_id(region.name),
                         "endplate_map", region.label))
    references = {}
    for region in anatomy.endplates:
        references.setdefault(region.reference_label, region.vertebra)
    for value, vertebra in sorted(references.items()):
        if value in present["reference_map"]:
            rows.append(("reference", vertebra, f"{vertebra} reference marrow", f"{vertebra} reference marrow",
                         "reference_map", value))
    return [
        SegmentSpec(number=n, kind=kind, name=name, label=label, tracking_id=tracking, attribute=attribute, value=value)
        for n, (kind, name, label, tracking, attribute, value) in enumerate(rows, start=1)
    ]


def write_seg(analysis: StudyAnalysis, path: str | Path) -> Dataset:
    """Write ``seg.dcm`` for ``analysis`` (DICOM T1 input) atomically; returns the Segmentation written.

    The SR (:func:`modic.report.dicom_sr.write_sr`) takes the returned object, so that it
    need not read the file back.
    """
    import highdicom as hd

    path = Path(path)
    anatomy = analysis.anatomy
    specs = segment_specs(anatomy)
    headers = _source_headers(analysis)
    sources = segmentation_sources(headers, segment_frames(anatomy, specs), slice_spacing=anatomy.geometry.spacing[2])
    grades = {grade.endplate: grade.modic_type for level in analysis.levels for grade in level.endplates}
    algorithm = algorithm_identification(analysis)
    descriptions = [_description(spec, algorithm, grades) for spec in specs]
    seg = hd.seg.Segmentation(
        **sources,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="modic",
        software_versions=__version__,
        device_serial_number=model_id(analysis),
        content_label=CONTENT_LABEL,
        content_description="Vertebral bodies, discs and endplate marrow bands",
        series_description=SERIES_DESCRIPTION,
    )
    if "further_source_images" in sources:
        reference_source_frames(seg, headers)
    with atomic.temporary_path(path) as temporary:
        seg.save_as(temporary, enforce_file_format=True)
    return seg


def source_images(headers: Sequence[Dataset]) -> list[Dataset]:
    """The source images of ``headers`` (slice order) as DICOM objects to reference, each once.

    Classic headers are the images themselves. Frames of multi-frame images
    (:class:`~modic.io.dicom_scan.FrameHeader`) reference their files' images,
    whose headers (without pixel data) are read again: SEG and SR reference the
    multi-frame objects with their frame numbers.
    """
    if frame_number(headers[0]) is None:
        return list(headers)
    files = dict.fromkeys(str(header.filename) for header in headers)
    return [pydicom.dcmread(file, stop_before_pixels=True) for file in files]


def slice_thickness(header: Dataset) -> float | None:
    """SliceThickness of a header in mm, or None when it is absent, empty or not a positive number.

    SliceThickness is Type 2 in the classic MR Image module (it may be empty)
    and often left out by anonymisers and converters; modic never takes the
    geometry from it (the slice spacing comes from ImagePositionPatient, see
    :func:`modic.io.dicom_volume.series_geometry`).
    """
    return _positive(header.get("SliceThickness", None))


PATIENT_AND_STUDY_TYPE_2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
)
"""Type 2 attributes of the Patient and General Study modules (present, possibly empty), which highdicom copies
from the first source image into the SEG and SR by attribute access; anonymisers often drop them."""


def highdicom_sources(images: Sequence[Dataset], *, thickness: float | None) -> list[Dataset]:
    """``images`` as highdicom can read them, for the SEG and the SR; the header objects given are not changed.

    highdicom reads some Type 2 and Type 3 attributes of its source images by
    attribute access and fails when one is missing or empty, which DICOM
    allows and anonymisers and converters do. An image that needs it is
    copied and, in the copy:

    * a missing patient or study attribute (:data:`PATIENT_AND_STUDY_TYPE_2`)
      is added empty, as DICOM writes an unknown Type 2 value;
    * a missing, empty or unusable SliceThickness (:func:`slice_thickness`)
      becomes ``thickness`` (mm), when given: highdicom needs one for a classic
      image's Pixel Measures and Image Library entry;
    * an empty or unusable SpacingBetweenSlices (Type 3) is removed.
    """
    prepared = []
    for image in images:
        missing = [keyword for keyword in PATIENT_AND_STUDY_TYPE_2 if keyword not in image]
        thin = thickness is not None and slice_thickness(image) is None
        spacing = "SpacingBetweenSlices" in image and _positive(image.get("SpacingBetweenSlices", None)) is None
        if missing or thin or spacing:
            image = copy.deepcopy(image)
            for keyword in missing:
                setattr(image, keyword, None)
            if thin:
                image.SliceThickness = DSfloat(thickness, auto_format=True)
            if spacing:
                del image.SpacingBetweenSlices
        prepared.append(image)
    return prepared


def _positive(value: Any) -> float | None:
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def segmentation_sources(headers: Sequence[Dataset], pixels: np.ndarray, *, slice_spacing: float) -> dict[str, Any]:
    """highdicom Segmentation arguments placing ``pixels`` (one frame per slice of ``headers``) on the source.

    The source images are prepared by :func:`highdicom_sources`. A classic
    series: the slices are the source images; a slice without a usable
    SliceThickness (Type 2 in MR: it may be missing or empty) is given
    ``slice_spacing`` (the distance between slice positions, which is how
    thick the SEG's voxels are) for the SEG's Pixel Measures. Frames of one
    multi-frame image: the array gets one frame per source frame (slice ``k``
    at frame ``frame_number - 1``, the others empty, so highdicom omits them),
    and highdicom references each with its ReferencedFrameNumber. Frames spread
    over several multi-frame files (a multi-file multi-frame series): highdicom
    takes one multi-frame source image for the geometry, so the first file is
    the source, the others further sources (all listed in the
    ReferencedSeriesSequence), each slice is placed by its frame's position,
    and :func:`reference_source_frames` then records which file and frame each
    SEG frame was derived from.
    """
    import highdicom as hd

    if frame_number(headers[0]) is None:
        return {"source_images": highdicom_sources(headers, thickness=slice_spacing), "pixel_array": pixels}
    images = highdicom_sources(source_images(headers), thickness=None)
    if len(images) == 1:
        frames = int(images[0].get("NumberOfFrames", 1) or 1)
        full = np.zeros((frames, *pixels.shape[1:]), dtype=pixels.dtype)
        for k, header in enumerate(headers):
            full[int(header.frame_number) - 1] = pixels[k]
        return {"source_images": images, "pixel_array": full}
    positions = [
        hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, [float(v) for v in header.ImagePositionPatient])
        for header in headers
    ]
    return {
        "source_images": images[:1],
        "further_source_images": images[1:],
        "pixel_array": pixels,
        "plane_positions": positions,
    }


SEGMENTATION_DERIVATION = ("113076", "DCM", "Segmentation")
SOURCE_IMAGE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")
POSITION_TOLERANCE_MM = 1e-3
"""A SEG frame and a source frame this close (ImagePositionPatient) lie at the same position."""


def reference_source_frames(seg: Dataset, headers: Sequence[Dataset]) -> None:
    """Give every frame of ``seg`` the source file and frame (of ``headers``) at its position.

    For a multi-file multi-frame T1 (see :func:`segmentation_sources`), where
    highdicom leaves the Derivation Image Sequence empty: each SEG frame's
    ImagePositionPatient is that of exactly one T1 frame, which is referenced
    by SOP instance and ReferencedFrameNumber, as highdicom does for one source.

    Raises:
        AnalysisError: a SEG frame lies at no source frame's position.
    """
    import highdicom as hd

    positions = np.array([[float(v) for v in header.ImagePositionPatient] for header in headers])
    for item in seg.PerFrameFunctionalGroupsSequence:
        where = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        distances = np.linalg.norm(positions - where, axis=1)
        nearest = int(np.argmin(distances))
        if distances[nearest] > POSITION_TOLERANCE_MM:
            raise AnalysisError(
                f"a segmentation frame at {where.round(3).tolist()} mm lies at no T1 frame's position (nearest "
                f"{distances[nearest]:.3f} mm away); cannot reference its source (use --no-dicom)"
            )
        header = headers[nearest]
        source = Dataset()
        source.ReferencedSOPClassUID = header.SOPClassUID
        source.ReferencedSOPInstanceUID = header.SOPInstanceUID
        source.ReferencedFrameNumber = int(header.frame_number)
        source.PurposeOfReferenceCodeSequence = [hd.sr.CodedConcept(*SOURCE_IMAGE_PURPOSE)]
        source.SpatialLocationsPreserved = "YES"
        derivation = Dataset()
        derivation.DerivationCodeSequence = [hd.sr.CodedConcept(*SEGMENTATION_DERIVATION)]
        derivation.SourceImageSequence = [source]
        item.DerivationImageSequence = [derivation]


def segment_frames(anatomy: SpineAnatomy, specs: Sequence[SegmentSpec]) -> np.ndarray:
    """The ``(frames, rows, columns, segments)`` uint8 mask array of ``specs``: frame k of the T1 is ``map[:, :, k].T``.

    Stored segment-major (the result is a transposed view) so that highdicom's
    per-segment, per-frame slices are contiguous, and filled only inside each
    structure's bounding box, so the zero pages of the rest are never touched:
    both make the SEG several times faster to encode.
    """
    maps = {spec.attribute: getattr(anatomy, spec.attribute).transpose(2, 1, 0) for spec in specs}
    boxes = {attribute: ndimage.find_objects(labels) for attribute, labels in maps.items()}
    pixels = np.zeros((len(specs), *anatomy.geometry.shape[::-1]), dtype=np.uint8)
    for n, spec in enumerate(specs):
        box = boxes[spec.attribute][spec.value - 1]
        pixels[n][box] = maps[spec.attribute][box] == spec.value
    return pixels.transpose(1, 2, 3, 0)


def algorithm_identification(analysis: StudyAnalysis) -> object:
    """highdicom AlgorithmIdentificationSequence naming modic, its version and the models used."""
    import highdicom as hd

    segmentation = segmentation_used(analysis)
    classifier = analysis.models.get("classifier", {})
    parameters = {
        "segmentation_model": (
            f"{segmentation['bundle']} {segmentation.get('version')}" if "bundle" in segmentation
            else str(segmentation.get("source"))
        ),
        "classifier": str(classifier.get("method")),
    }
    return hd.AlgorithmIdentificationSequence(
        name="modic",
        family=codes.DCM.ArtificialIntelligence,
        version=__version__,
        parameters=parameters,
    )


def segmentation_used(analysis: StudyAnalysis) -> dict[str, Any]:
    """The report's record of the segmentation bundle that segmented this study (the thin-slice one when used)."""
    segmentation = analysis.models.get("segmentation", {})
    thin = segmentation.get("thin_slice")
    return thin if isinstance(thin, dict) and thin.get("used") else segmentation


def model_id(analysis: StudyAnalysis) -> str:
    """The SHA-256 prefix of the segmentation model used for this study, or its version when the hash is unknown."""
    segmentation = segmentation_used(analysis)
    return str(segmentation.get("sha256") or segmentation.get("version") or "unknown")[:16]


def _source_headers(analysis: StudyAnalysis) -> Sequence[Dataset]:
    """The T1 source headers, checked against the grid of the label maps."""
    headers = analysis.images.t1_source_headers
    if not headers:
        raise AnalysisError("a DICOM SEG needs DICOM T1 input; this study has no T1 source headers (use --no-dicom)")
    geometry = analysis.anatomy.geometry
    expected = (int(headers[0].Columns), int(headers[0].Rows), len(headers))
    if tuple(geometry.shape) != expected:
        raise AnalysisError(
            f"the label maps have shape {tuple(geometry.shape)} but the T1 source series is columns x rows x slices "
            f"{expected}; cannot map them onto its frames (use --no-dicom)"
        )
    return headers


def _description(spec: SegmentSpec, algorithm: object, grades: dict[str, int | None]) -> object:
    import highdicom as hd

    if spec.kind == "vertebra":
        category, kind, region = codes.SCT.AnatomicalStructure, VERTEBRAL_BODY, vertebra_code(spec.name)
        colour = STRUCTURE_COLOURS["vertebra"]
    elif spec.kind == "disc":
        category, kind, region = codes.SCT.AnatomicalStructure, disc_code(spec.name), None
        colour = STRUCTURE_COLOURS["disc"]
    elif spec.kind == "endplate":
        category, kind, region = codes.SCT.Tissue, codes.SCT.BoneMarrow, vertebra_code(endplate_parts(spec.name)[0])
        grade = grades.get(spec.name)
        colour = MODIC_COLOURS[grade] if grade is not None else UNDETERMINED_COLOUR
    else:
        category, kind, region = codes.SCT.Tissue, codes.SCT.BoneMarrow, vertebra_code(spec.name)
        colour = STRUCTURE_COLOURS["reference"]
    return hd.seg.SegmentDescription(
        segment_number=spec.number,
        segment_label=spec.label,
        segmented_property_category=category,
        segmented_property_type=kind,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        tracking_uid=hd.UID(),
        tracking_id=spec.tracking_id,
        anatomic_regions=[region] if region is not None else None,
        display_color=hd.color.CIELabColor.from_rgb(*colour),
    )

