"""Python API: the same analyses as the command line.

Example::

    from modic.api import analyze_study, analyze_slice
    analysis = analyze_study("/data/study01")            # DICOM folder
    analysis = analyze_study(t1="t1.nii.gz", t2="t2.nii.gz")
    analysis = analyze_slice(t1="a_t1.png", t2="a_t2.png", spacing=(0.5, 0.5))
    for level in analysis.levels:
        print(level.level, level.modic_type, level.confidence)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modic.io.slice_pair import load_slice_pair
from modic.io.study import load_study
from modic.pipeline import Models, analyze_images, load_analysis_config
from modic.results import StudyAnalysis


def analyze_study(
    path: str | Path | None = None,
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    device: str = "auto",
    config: Mapping[str, Any] | None = None,
    models: Models | None = None,
) -> StudyAnalysis:
    """Analyse a DICOM study folder, or T1/T2 NIfTI/MHA files."""
    config = dict(config) if config is not None else load_analysis_config()
    images = load_study(path, t1=t1, t2=t2, t1_uid=t1_uid, t2_uid=t2_uid)
    return analyze_images(images, models=models or Models.load(config, device=device), config=config)


def analyze_slice(
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    spacing: tuple[float, float] | None = None,
    t2_spacing: tuple[float, float] | None = None,
    device: str = "auto",
    config: Mapping[str, Any] | None = None,
    models: Models | None = None,
) -> StudyAnalysis:
    """Analyse one co-registered sagittal T1/T2 slice pair (PNG/JPEG/TIFF, DICOM or NIfTI)."""
    config = dict(config) if config is not None else load_analysis_config()
    images = load_slice_pair(t1=t1, t2=t2, spacing=spacing, t2_spacing=t2_spacing)
    return analyze_images(images, models=models or Models.load(config, device=device), config=config)
