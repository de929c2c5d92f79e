"""Vertebra and disc instances, level names counted from S1, and endplate regions.

The stage's classes are imported on first use (``modic.levels.build_anatomy``),
so that :mod:`modic.levels.names` stays light for report readers.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SpineAnatomy": "modic.levels.anatomy",
    "Structure": "modic.levels.anatomy",
    "build_anatomy": "modic.levels.anatomy",
    "EndplateRegion": "modic.levels.endplates",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modic.levels' has no attribute {name!r}")
