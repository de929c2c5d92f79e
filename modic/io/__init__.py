"""Input: DICOM studies, NIfTI/MHA volumes and single sagittal slices, as :class:`Volume` objects.

The readers are imported on first use (``modic.io.load_study``), so importing
:class:`Volume` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from modic.io.volume import Volume

_LAZY = {
    "load_study": "modic.io.study",
    "StudyImages": "modic.io.study",
    "SeriesInfo": "modic.io.study",
    "scan_studies": "modic.io.dicom_scan",
    "scan_folder": "modic.io.dicom_scan",
    "StudyIndex": "modic.io.dicom_scan",
    "SeriesIndex": "modic.io.dicom_scan",
    "select_series": "modic.io.series_select",
    "load_series": "modic.io.dicom_volume",
    "resample_to": "modic.io.resample",
    "read_volume": "modic.io.formats",
    "read_nifti": "modic.io.formats",
    "write_nifti": "modic.io.formats",
    "read_itk": "modic.io.formats",
    "read_slice": "modic.io.formats",
}

__all__ = ["Volume", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modic.io' has no attribute {name!r}")
