"""Python API: the same analyses as the command line.

Example::

    from modic.api import analyze_study, analyze_slice
    analysis = analyze_study("/data/study01")            # DICOM folder
    analysis = analyze_study(t1="t1.nii.gz", t2="t2.nii.gz")
    analysis = analyze_slice(t1="a_t1.png", t2="a_t2.png", spacing=(0.5, 0.5))
    for level in analysis.levels:
        print(level.level, level.modic_type, level.confidence)

``settings`` takes settings already loaded (:func:`modic.settings.load_settings`),
a YAML file like ``--config``, or a mapping holding only the keys to change,
e.g. ``analyze_study("/data/study01", settings={"classification": {"method": "learned"}})``.
"""

from __future__ import annotations

from pathlib import Path

from modic.io.slice_pair import load_slice_pair
from modic.io.study import load_study
from modic.pipeline import Models, StudyAnalysis, analyze_images
from modic.settings import SettingsSource, load_settings


def analyze_study(
    path: str | Path | None = None,
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    device: str = "auto",
    settings: SettingsSource = None,
    models: Models | None = None,
) -> StudyAnalysis:
    """Analyse a DICOM study folder, or T1/T2 NIfTI/MHA files (``settings``: see the module docstring)."""
    config = load_settings(settings)
    images = load_study(
        path, t1=t1, t2=t2, t1_uid=t1_uid, t2_uid=t2_uid,
        config=config.io, selection=config.series_selection, checks=config.input_checks,
    )
    return analyze_images(images, models=models or Models.load(config, device=device), config=config)


def analyze_slice(
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    spacing: tuple[float, float] | None = None,
    t2_spacing: tuple[float, float] | None = None,
    device: str = "auto",
    settings: SettingsSource = None,
    models: Models | None = None,
) -> StudyAnalysis:
    """Analyse one co-registered sagittal T1/T2 slice pair (PNG/JPEG/TIFF, DICOM or NIfTI)."""
    config = load_settings(settings)
    images = load_slice_pair(t1=t1, t2=t2, spacing=spacing, t2_spacing=t2_spacing, config=config.io)
    return analyze_images(images, models=models or Models.load(config, device=device), config=config)
