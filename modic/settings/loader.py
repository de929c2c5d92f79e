"""Load the analysis settings: the shipped files under ``configs/``, with a partial user file merged on top.

The only place that reads these YAML files; stages receive the settings objects.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modic.config import load_shipped, load_yaml
from modic.settings.analysis import AnalysisSettings
from modic.settings.build import Layer, build

SHIPPED_FILES: dict[str, tuple[str, ...]] = {
    "analysis.yaml": (),
    "io.yaml": ("io",),
    "series_selection.yaml": ("series_selection",),
    "input_checks.yaml": ("input_checks",),
    "batch.yaml": ("batch",),
}
"""Each shipped file under ``configs/`` and the section of :class:`AnalysisSettings` it holds (``()``: the top)."""

SettingsSource = AnalysisSettings | str | Path | Mapping[str, Any] | None
"""What :func:`load_settings` accepts: settings, a YAML file, a partial mapping, or nothing (the shipped ones)."""


def _shipped_layers() -> list[Layer]:
    return [Layer(load_shipped(name), f"configs/{name}", root) for name, root in SHIPPED_FILES.items()]


@functools.lru_cache(maxsize=1)
def shipped_settings() -> AnalysisSettings:
    """The shipped settings, read and validated once per process (they are frozen, so sharing them is safe)."""
    return build(AnalysisSettings, _shipped_layers())


def load_settings(source: SettingsSource = None) -> AnalysisSettings:
    """The analysis settings: the shipped ones with ``source`` merged on top.

    Args:
        source: a YAML file (``--config``) or a mapping holding only the keys
            to change, e.g. ``{"classification": {"method": "learned"}}``;
            settings already built are returned as they are; None gives the
            shipped settings.

    Raises:
        ConfigError: one line naming the file and the dotted key: an unknown
            key (with the closest spelling), or a value of the wrong type or
            out of range (quoted, with what is accepted).
    """
    if isinstance(source, AnalysisSettings):
        return source
    if source is None:
        return shipped_settings()
    if isinstance(source, Mapping):
        layer = Layer(source, "(mapping given in Python)")
    else:
        layer = Layer(load_yaml(source), str(source))
    return build(AnalysisSettings, [*_shipped_layers(), layer])
