"""The results of an analysis: modic's domain types, at the bottom of the layers.

A :class:`StudyAnalysis` holds what one study's analysis produced: the images
read, the anatomy found, a :class:`LevelGrade` per disc level (with an
:class:`EndplateGrade` per endplate) and the :class:`Flag` warnings. Report
writers, candidacy, batch and the API read these types; keeping them here,
apart from the stages that compute them, lets a report be written (JSON, CSV,
pictures, DICOM SEG and SR) without importing the segmentation network or
torch. The stage types a result carries (``StudyImages``, ``SpineAnatomy``,
``EndplateFeatures``) and the settings it was made with are named for type checkers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modic.classification.features import EndplateFeatures
    from modic.io.study import StudyImages
    from modic.levels.anatomy import SpineAnatomy
    from modic.settings import AnalysisSettings

__all__ = ["UNDETERMINED", "Decision", "EndplateGrade", "Flag", "LevelGrade", "StudyAnalysis"]

UNDETERMINED = "undetermined"
"""How reports write the type of an endplate or level that the images cannot decide (``modic_type`` None)."""


@dataclass(frozen=True)
class Flag:
    """A warning attached to the analysis: machine-readable ``code`` and a sentence for people."""

    code: str
    message: str
    severity: str = "warning"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class Decision:
    """A classifier's verdict on one endplate.

    ``scores`` are per-type pattern fractions (rules) or probabilities (learned);
    ``modic_type`` None means undetermined (:func:`modic.classification.grading.evidence_limited`).
    """

    modic_type: int | None
    mixed: str | None
    confidence: float
    scores: dict[int, float]
    note: str | None = None


@dataclass(frozen=True)
class EndplateGrade:
    """The reading of one endplate; ``modic_type`` None when the images cannot decide it (``note`` says why)."""

    endplate: str
    level: str
    modic_type: int | None
    mixed: str | None
    confidence: float
    scores: dict[int, float]
    method: str
    region_fraction: float
    height_fraction: float
    features: EndplateFeatures
    note: str | None = None
    presence_probability: float | None = None
    type_probabilities: dict[int, float] | None = None


@dataclass(frozen=True)
class LevelGrade:
    """The reading of one disc level: the most significant type of its two endplates.

    ``modic_type`` is None (undetermined) when no endplate shows a change and
    at least one could not be typed. ``presence_probability`` is the
    calibrated probability that the level is changed (either endplate) and
    ``changed`` the presence model's verdict; both None without a presence model.
    ``type_probabilities`` (types 0-3, summing to 1) need both sequences and a
    presence bundle with a type model (:mod:`modic.classification.type_probability`).
    """

    level: str
    modic_type: int | None
    mixed: str | None
    confidence: float
    endplates: tuple[EndplateGrade, ...]
    presence_probability: float | None = None
    changed: bool | None = None
    type_probabilities: dict[int, float] | None = None


@dataclass
class StudyAnalysis:
    """Everything one analysis produced, in memory (reports are written from this)."""

    images: StudyImages
    anatomy: SpineAnatomy
    levels: list[LevelGrade]
    warnings: list[Flag]
    models: dict[str, Any]
    config: AnalysisSettings
    timings: dict[str, float] = field(default_factory=dict)
