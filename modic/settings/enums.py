"""Closed vocabularies of the settings: a value outside them is refused when the settings are loaded.

Each is a ``str`` enum, so a member compares equal to the text written in the
YAML files and in reports (``ClassifierMethod.RULES == "rules"``); write
``.value`` where the text itself is needed.
"""

from __future__ import annotations

from enum import Enum


class ClassifierMethod(str, Enum):
    """Which endplate classifier decides (``classification.method``)."""

    RULES = "rules"
    LEARNED = "learned"
    PATCH = "patch"


class DepthMode(str, Enum):
    """How ``endplates.depth.value`` is measured: a fraction of the body height, or millimetres."""

    FRACTION = "fraction"
    MM = "mm"


class CpuPrecision(str, Enum):
    """Arithmetic of the segmentation network on a CPU (``segmentation.cpu_precision``)."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    AUTO = "auto"


class Weighting(str, Enum):
    """Weighting of an MR series as :mod:`modic.io.series_select` names it."""

    T1 = "T1"
    T1_FS = "T1_FS"
    T2 = "T2"
    T2_FS = "T2_FS"
    PD = "PD"
    PD_FS = "PD_FS"
    STIR = "STIR"
    FLAIR = "FLAIR"
    T2STAR = "T2STAR"
    UNKNOWN = "unknown"


class Plane(str, Enum):
    """Anatomical plane of a series."""

    SAGITTAL = "sagittal"
    CORONAL = "coronal"
    AXIAL = "axial"


class WarningCode(str, Enum):
    """Codes of the warnings a report can carry (``warnings[].code`` in report.json).

    Candidacy policies name some of them (``level_uncertainty.warning_codes``);
    the stages that raise them are :mod:`modic.levels`, :mod:`modic.pipeline`
    and :mod:`modic.io`.
    """

    NO_VERTEBRAE = "no_vertebrae"
    S1_NOT_FOUND = "s1_not_found"
    S1_AMBIGUOUS = "s1_ambiguous"
    S1_SMALL = "s1_small"
    BONE_BELOW_S1 = "bone_below_s1"
    MERGED_BODIES_SUSPECTED = "merged_bodies_suspected"
    MERGED_BODIES_SPLIT = "merged_bodies_split"
    POSSIBLE_MISSED_VERTEBRA = "possible_missed_vertebra"
    DISC_NOT_FOUND = "disc_not_found"
    TRANSITIONAL_VERTEBRA_SUSPECTED = "transitional_vertebra_suspected"
    ENDPLATE_MISSING = "endplate_missing"
    SMALL_REGION = "small_region"
    REFERENCE_MARROW_AFFECTED = "reference_marrow_affected"
    WHOLE_BODY_CHANGE = "whole_body_change"
    UNDETERMINED_ENDPLATES = "undetermined_endplates"
    LOW_CONFIDENCE = "low_confidence"
    MISSING_T1 = "missing_t1"
    MISSING_T2 = "missing_t2"
    ALIGNMENT_UNCERTAIN = "alignment_uncertain"
    MONOCHROME1_INVERTED = "monochrome1_inverted"
    T2_OUTSIDE_T1 = "t2_outside_t1"
    EXAM_MIXED = "exam_mixed"
