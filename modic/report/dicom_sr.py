"""``sr.dcm``: a Comprehensive 3D SR (TID 1500 Measurement Report) of the Modic reading of each endplate.

One measurement group per graded endplate, tracked as ``"L5 superior endplate"``
with the tracking UID of its band in ``seg.dcm``, whose segment it references
(TID 1411 Volumetric ROI). The finding site is the vertebra (DICOM CID 7603,
the sacrum for S1) with the topographical modifier superior or inferior. The
Modic type is a qualitative evaluation; extent, signal ratios and confidence
are numeric measurements with the UCUM unit ``1``. No standard code exists
for Modic types or these measurements, so they use the private coding scheme
``99MODIC`` (declared in the CodingSchemeIdentificationSequence and listed in
``docs/report.md``). Values come from report.json, so both always agree.

An endplate whose band has no voxel (so no segment) gets a TID 1501 group
with the same content but no segment reference. The observer is the device
(modic); the Image Library lists the T1 source images, a multi-frame image
once, described by its first frame used (its frame header carries the plane
position, orientation and pixel spacing that the library entry needs). An
image without a SliceThickness (Type 2 in MR) has no Slice Thickness row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from modic import __version__, atomic
from modic.errors import AnalysisError
from modic.levels.names import endplate_parts
from modic.report.dicom_seg import (
    MANUFACTURER,
    endplate_tracking_id,
    highdicom_sources,
    model_id,
    slice_thickness,
    vertebra_code,
)
from modic.results import UNDETERMINED, StudyAnalysis

SERIES_NUMBER = 9102
SERIES_DESCRIPTION = "modic Modic report (research use only)"
PRIVATE_SCHEME = "99MODIC"

MODIC_TYPE = Code("MODIC-TYPE", PRIVATE_SCHEME, "Modic type")
REGION_FRACTION = Code("EXTENT-REGION", PRIVATE_SCHEME, "Fraction of endplate marrow band with the Modic pattern")
HEIGHT_FRACTION = Code("EXTENT-HEIGHT", PRIVATE_SCHEME, "Fraction of vertebral body height with the Modic pattern")
T1_RATIO = Code("T1-RATIO", PRIVATE_SCHEME, "T1 signal ratio of band to reference marrow (median)")
T2_RATIO = Code("T2-RATIO", PRIVATE_SCHEME, "T2 signal ratio of band to reference marrow (median)")
CONFIDENCE = Code("CONFIDENCE", PRIVATE_SCHEME, "Confidence of the Modic type")
PRESENCE = Code("PRESENCE-PROB", PRIVATE_SCHEME, "Calibrated probability of a Modic change at the endplate")
TYPE_PROBABILITY = {
    k: Code(f"TYPE{k}-PROB", PRIVATE_SCHEME, f"Calibrated probability of Modic type {k} at the endplate")
    for k in (1, 2, 3)
}
UNITLESS = codes.UCUM.NoUnits
SIDES = {"superior": codes.SCT.Superior, "inferior": codes.SCT.Inferior}


def modic_type_code(modic_type: int | str, mixed: str | None) -> Code:
    """``99MODIC`` code of a reading: ``MT0`` none, ``MT1``..``MT3``, mixed ``MT1-2`` (types joined by '-'),
    ``MTU`` undetermined (the images cannot decide the type)."""
    if modic_type == UNDETERMINED:
        return Code("MTU", PRIVATE_SCHEME, "Modic type undetermined")
    if mixed:
        return Code(f"MT{mixed.replace('/', '-')}", PRIVATE_SCHEME, f"Modic type {mixed} (mixed)")
    if modic_type == 0:
        return Code("MT0", PRIVATE_SCHEME, "No Modic change")
    return Code(f"MT{modic_type}", PRIVATE_SCHEME, f"Modic type {modic_type}")


def write_sr(
    analysis: StudyAnalysis, report: Mapping[str, Any], path: str | Path, *, segmentation: Dataset
) -> Path:
    """Write ``sr.dcm`` for ``analysis`` atomically, referencing the segments of ``segmentation``; returns ``path``.

    ``segmentation`` is the highdicom Segmentation of ``seg.dcm``, as
    :func:`~modic.report.dicom_seg.write_seg` returns it (or as ``highdicom.seg.segread`` reads it).
    """
    import highdicom as hd

    path = Path(path)
    if not analysis.images.t1_source_headers:
        raise AnalysisError("a DICOM SR needs DICOM T1 input; this study has no T1 source headers (use --no-dicom)")
    headers = list({str(h.SOPInstanceUID): h for h in reversed(analysis.images.t1_source_headers)}.values())[::-1]
    sources = highdicom_sources(headers, thickness=analysis.anatomy.geometry.spacing[2])
    segments = {item.TrackingID: item for item in segmentation.SegmentSequence}
    algorithm = hd.sr.AlgorithmIdentification(name="modic", version=__version__)
    groups = [
        _group(
            endplate,
            seg=segmentation,
            segment=segments.get(endplate_tracking_id(endplate["endplate"])),
            algorithm=algorithm,
        )
        for level in report["levels"]
        for endplate in level["endplates"]
    ]
    measurement_report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=_observer(analysis)),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        referenced_images=sources,
    )
    _drop_slice_thickness(measurement_report, {str(h.SOPInstanceUID) for h in headers if slice_thickness(h) is None})
    scheme = hd.coding_schemes.CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="modic private codes for Modic changes",
        responsible_organization="modic developers",
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*sources, segmentation],
        content=measurement_report,
        series_instance_uid=hd.UID(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name="modic",
        software_versions=__version__,
        coding_schemes=[scheme],
    )
    with atomic.temporary_path(path) as temporary:
        sr.save_as(temporary, enforce_file_format=True)
    return path


def _drop_slice_thickness(content: Sequence[Dataset], uids: set[str]) -> None:
    """Remove the Slice Thickness descriptor from the Image Library entries of the images ``uids``.

    highdicom writes one for every cross-sectional image and needs a value
    (:func:`~modic.report.dicom_seg.highdicom_sources` gives one); for an
    image without a SliceThickness of its own the row (optional in TID 1604)
    is left out rather than filled with a value the image does not state.
    """
    if not uids:
        return
    for item in content:
        children = item.get("ContentSequence")
        if not children:
            continue
        referenced = item.get("ReferencedSOPSequence")
        if item.get("ValueType") == "IMAGE" and referenced and str(referenced[0].ReferencedSOPInstanceUID) in uids:
            kept = [
                child for child in children
                if not (child.get("ValueType") == "NUM"
                        and child.ConceptNameCodeSequence[0].CodeValue == codes.DCM.SliceThickness.value)
            ]
            del children[:]
            children.extend(kept)
        else:
            _drop_slice_thickness(children, uids)


def _observer(analysis: StudyAnalysis) -> object:
    import highdicom as hd

    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["modic", __version__]),
            name="modic",
            manufacturer_name=MANUFACTURER,
            model_name=f"modic {__version__}",
            serial_number=model_id(analysis),
        ),
    )


def _group(endplate: Mapping[str, Any], *, seg: Any, segment: Any, algorithm: Any) -> object:
    """The measurement group of one endplate of report.json."""
    import highdicom as hd

    name = endplate["endplate"]
    vertebra, side = endplate_parts(name)
    content: dict[str, Any] = {
        "tracking_identifier": hd.sr.TrackingIdentifier(
            uid=segment.TrackingUID if segment is not None else hd.UID(), identifier=endplate_tracking_id(name)
        ),
        "finding_type": codes.SCT.BoneMarrow,
        "algorithm_id": algorithm,
        "finding_sites": [
            hd.sr.FindingSite(anatomic_location=vertebra_code(vertebra), topographical_modifier=SIDES[side])
        ],
        "measurements": _measurements(endplate),
        "qualitative_evaluations": [
            hd.sr.QualitativeEvaluation(MODIC_TYPE, modic_type_code(endplate["modic_type"], endplate["mixed"]))
        ],
    }
    if segment is None:
        return hd.sr.MeasurementsAndQualitativeEvaluations(**content)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, int(segment.SegmentNumber)),
        **content,
    )


def _measurements(endplate: Mapping[str, Any]) -> Sequence[object]:
    import highdicom as hd

    signal = endplate["signal"]
    values = [
        (REGION_FRACTION, endplate["extent"]["region_fraction"]),
        (HEIGHT_FRACTION, endplate["extent"]["height_fraction"]),
        (T1_RATIO, (signal["t1"] or {}).get("ratio_median")),
        (T2_RATIO, (signal["t2"] or {}).get("ratio_median")),
        (CONFIDENCE, endplate["confidence"]),
        (PRESENCE, endplate.get("presence_probability")),
        *((code, (endplate.get("type_probabilities") or {}).get(str(k))) for k, code in TYPE_PROBABILITY.items()),
    ]
    return [
        hd.sr.Measurement(name=name, value=float(value), unit=UNITLESS) for name, value in values if value is not None
    ]
