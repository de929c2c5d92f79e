"""Typed, validated settings of every stage, loaded once from ``configs/`` (plus a partial user file).

Each stage has a frozen dataclass (:class:`LevelsSettings`,
:class:`ClassificationSettings`, :class:`IoSettings`, ...) and
:class:`AnalysisSettings` holds them all. :func:`load_settings` merges a user
file (``--config``) holding only the keys to change onto the shipped files and
validates every value once, at load: an unknown key, a wrong type or a value
out of range is one :class:`~modic.errors.ConfigError` line naming the file
and the dotted key, quoting the value and saying what is accepted (with the
closest spelling for a misspelt key). Stages then read attributes
(``settings.classification.voxels.t1_low``), never YAML.

Why dataclasses and not pydantic: the settings need only what the standard
library gives (typed, frozen, picklable records for batch workers, ``asdict``
for report.json), the checks are a few ranges and choices that a field's
metadata carries, and messages must follow modic's own one-line error
convention rather than pydantic's multi-line reports; a new dependency (and
its major-version migrations) would buy nothing else here.

A foundation module: it imports nothing of modic but :mod:`modic.errors` and
the YAML loading of :mod:`modic.config`.
"""

from __future__ import annotations

from modic.settings.analysis import AnalysisSettings, RuntimeSettings, SingleSliceSettings
from modic.settings.batch import BatchSettings
from modic.settings.build import Layer, build, invalid_value_error, to_dict, unknown_key_error
from modic.settings.classification import (
    ClassificationSettings,
    PatchSettings,
    RuleSettings,
    VoxelSettings,
    WholeBodySettings,
)
from modic.settings.enums import ClassifierMethod, CpuPrecision, DepthMode, Plane, WarningCode, Weighting
from modic.settings.input_checks import ContrastSettings, InputCheckSettings, OrientationSettings
from modic.settings.io import IoSettings
from modic.settings.levels import DepthSettings, EndplateSettings, LevelsSettings
from modic.settings.loader import SettingsSource, load_settings, shipped_settings
from modic.settings.segmentation import SegmentationSettings
from modic.settings.series_selection import SeriesSelectionSettings

__all__ = [
    "AnalysisSettings",
    "BatchSettings",
    "ClassificationSettings",
    "ClassifierMethod",
    "ContrastSettings",
    "CpuPrecision",
    "DepthMode",
    "DepthSettings",
    "EndplateSettings",
    "InputCheckSettings",
    "IoSettings",
    "Layer",
    "LevelsSettings",
    "OrientationSettings",
    "PatchSettings",
    "Plane",
    "RuleSettings",
    "RuntimeSettings",
    "SegmentationSettings",
    "SeriesSelectionSettings",
    "SettingsSource",
    "SingleSliceSettings",
    "VoxelSettings",
    "WholeBodySettings",
    "WarningCode",
    "Weighting",
    "build",
    "invalid_value_error",
    "load_settings",
    "shipped_settings",
    "to_dict",
    "unknown_key_error",
]
