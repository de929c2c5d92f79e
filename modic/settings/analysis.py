"""The aggregate :class:`AnalysisSettings`: every stage's settings, as one analysis uses them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modic.settings.batch import BatchSettings
from modic.settings.build import Layer, build, to_dict
from modic.settings.classification import ClassificationSettings
from modic.settings.fields import number
from modic.settings.input_checks import InputCheckSettings
from modic.settings.io import IoSettings
from modic.settings.levels import EndplateSettings, LevelsSettings
from modic.settings.segmentation import SegmentationSettings
from modic.settings.series_selection import SeriesSelectionSettings


@dataclass(frozen=True, kw_only=True)
class SingleSliceSettings:
    """Alignment of a T1/T2 slice pair on the segmented spine."""

    max_shift_mm: float = number(0)
    min_alignment_correlation: float = number(-1, 1)


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """Process-wide tuning applied when the models are loaded (:mod:`modic.runtime`)."""

    keep_freed_memory_mb: int = number(0, 2047, integer=True)


@dataclass(frozen=True, kw_only=True)
class AnalysisSettings:
    """Everything an analysis reads from ``configs/``: one section per stage.

    The first six sections are ``configs/analysis.yaml``; ``io``,
    ``series_selection``, ``input_checks`` and ``batch`` are the files of
    those names, and a user file given with ``--config`` may override any of
    them.
    """

    segmentation: SegmentationSettings
    levels: LevelsSettings
    endplates: EndplateSettings
    classification: ClassificationSettings
    single_slice: SingleSliceSettings
    runtime: RuntimeSettings
    io: IoSettings
    series_selection: SeriesSelectionSettings
    input_checks: InputCheckSettings
    batch: BatchSettings

    def to_dict(self) -> dict[str, Any]:
        """The settings as the YAML files write them (lists, texts and numbers), e.g. for report.json."""
        return to_dict(self)  # type: ignore[no-any-return]

    def merged(self, changes: Mapping[str, Any], *, file: str = "overrides") -> AnalysisSettings:
        """These settings with ``changes`` (a partial mapping of the same layout) merged on top, validated.

        ``file`` is how errors name where ``changes`` came from.
        """
        return build(AnalysisSettings, [Layer(self.to_dict(), "settings"), Layer(changes, file)])
