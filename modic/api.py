"""Python API: everything the command line does, for scripts and notebooks.

Analyse a study and write the full report (the files of ``modic analyze``)::

    from modic.api import analyze_study, check_candidacy
    analysis = analyze_study("/data/study01")                  # DICOM folder
    analysis = analyze_study(t1="t1.nii.gz", t2="t2.nii.gz", method="rules")
    for level in analysis.levels:
        print(level.level, level.modic_type, level.confidence)
    candidacy = check_candidacy(analysis, clinical="patient.yaml")
    analysis.write("results/study01", candidacy=candidacy.to_dict())

``settings`` takes settings already loaded (:func:`modic.settings.load_settings`),
a YAML file like ``--config``, or a mapping holding only the keys to change,
e.g. ``analyze_study("/data/study01", settings={"classification": {"method": "learned"}})``.

Grade another tool's segmentation (no modic network, no torch)::

    from modic.api import grade_segmentation
    analysis = grade_segmentation(t1="t1.nii.gz", t2="t2.nii.gz", labels="seg.nii.gz",
                                  mapping={43: "vertebral_body", 44: "vertebral_body", 45: "vertebral_body",
                                           50: "s1", 93: "disc", 94: "disc", 95: "disc"})

A cohort, as ``modic batch``: :func:`analyze_cohort`.

The analyses are :class:`Analysis` objects: the
:class:`modic.results.StudyAnalysis` of the pipeline, plus :meth:`Analysis.write`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from modic.batch import BatchOptions, BatchResult, run_batch
from modic.candidacy import CandidacyResult, evaluate_candidacy, load_clinical, load_policy
from modic.classification.factory import with_method
from modic.io.formats import read_volume
from modic.io.slice_pair import load_slice_pair
from modic.io.study import StudyImages, load_study
from modic.io.volume import Volume
from modic.pipeline import Models, analyze_images, grade_probabilities, segmentation_inputs
from modic.report.json_report import build_report
from modic.report.writer import write_report
from modic.results import StudyAnalysis
from modic.segmentation.probabilities import label_classes, probabilities_from_labels
from modic.settings import AnalysisSettings, SettingsSource, load_settings

__all__ = [
    "Analysis",
    "StudyAnalysis",
    "analyze_cohort",
    "analyze_slice",
    "analyze_study",
    "check_candidacy",
    "grade_images",
    "grade_segmentation",
    "load_models",
]


@dataclass
class Analysis(StudyAnalysis):
    """What the API's analyses return: the pipeline's :class:`~modic.results.StudyAnalysis` that writes its report.

    It lives here, above the report writers, so that the result types at the
    bottom of the layers need nothing above them (CONTRIBUTING.md, Layers).
    """

    @classmethod
    def of(cls, analysis: StudyAnalysis) -> Analysis:
        """``analysis`` as an :class:`Analysis` (the same fields, not copied)."""
        return cls(**{f.name: getattr(analysis, f.name) for f in fields(StudyAnalysis)})

    def write(
        self,
        out_dir: str | Path,
        *,
        overwrite: bool = False,
        keep_identifiers: bool = False,
        dicom: bool = True,
        candidacy: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write everything ``modic analyze`` writes into ``out_dir``; returns the report dictionary.

        The same files as the command: report.json, levels.csv, the NIfTI label
        maps, the pictures, report.html and, for DICOM input, seg.dcm and sr.dcm
        (``dicom=False``: not those, as ``--no-dicom``). ``overwrite``: replace
        a folder that modic wrote (``--overwrite``; never one holding other
        files). ``keep_identifiers``: keep patient identifiers in report.json
        (``--keep-identifiers``). ``candidacy``: a candidacy result to include
        (``check_candidacy(...).to_dict()``, as ``--clinical``). The folder
        appears complete or not at all.

        Raises:
            OutputFolderError: the folder is refused (not empty without
                ``overwrite``, holds other files, inside the input, ...).
            OutputError: it cannot be written (no permission, disk full).
        """
        return write_report(
            self, out_dir, overwrite=overwrite, keep_identifiers=keep_identifiers, dicom=dicom, candidacy=candidacy
        )


def load_models(
    *, settings: SettingsSource = None, device: str = "auto", model: str | Path | None = None,
    method: str | None = None,
) -> Models:
    """The segmentation network and grading model, to reuse over many studies (``models=`` below).

    ``model``: a segmentation bundle folder or shipped name for every volume (``--model``);
    ``method``: ``rules``, ``learned`` or ``patch`` (``--method``); ``device``: ``auto``, ``cpu``,
    ``cuda`` or ``cuda:N`` (``--device``); ``settings``: see the module docstring.
    """
    return Models.load(_settings(settings, method), device=device, bundle=model)


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
    model: str | Path | None = None,
    method: str | None = None,
) -> Analysis:
    """Analyze a DICOM study folder, or T1/T2 NIfTI/MHA files, as ``modic analyze`` does.

    ``settings``: see the module docstring. ``models``: models loaded once by
    :func:`load_models` (then ``device``, ``model`` and ``method`` are theirs).
    """
    config = _settings(settings, method)
    images = load_study(
        path, t1=t1, t2=t2, t1_uid=t1_uid, t2_uid=t2_uid,
        config=config.io, selection=config.series_selection, checks=config.input_checks,
    )
    return Analysis.of(
        analyze_images(images, models=models or Models.load(config, device=device, bundle=model), config=config)
    )


def analyze_slice(
    *,
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    spacing: tuple[float, float] | None = None,
    t2_spacing: tuple[float, float] | None = None,
    device: str = "auto",
    settings: SettingsSource = None,
    models: Models | None = None,
    model: str | Path | None = None,
    method: str | None = None,
) -> Analysis:
    """Analyze one co-registered sagittal T1/T2 slice pair (PNG/JPEG/TIFF, DICOM or NIfTI), as ``modic analyze-slice``."""
    config = _settings(settings, method)
    images = load_slice_pair(t1=t1, t2=t2, spacing=spacing, t2_spacing=t2_spacing, config=config.io)
    return Analysis.of(
        analyze_images(images, models=models or Models.load(config, device=device, bundle=model), config=config)
    )


def grade_segmentation(
    path: str | Path | None = None,
    *,
    labels: str | Path | Volume,
    mapping: Mapping[int, str],
    t1: str | Path | None = None,
    t2: str | Path | None = None,
    t1_uid: str | None = None,
    t2_uid: str | None = None,
    settings: SettingsSource = None,
    method: str | None = None,
) -> Analysis:
    """Grade a study from another tool's segmentation (e.g. TotalSpineSeg), without modic's network.

    ``labels``: the tool's integer label map (a NIfTI/MHA file or a
    :class:`~modic.io.volume.Volume`), on any grid covering the images;
    ``mapping``: its label values -> ``"vertebral_body"``, ``"disc"``, ``"s1"``
    (:func:`modic.segmentation.probabilities.probabilities_from_labels`; other
    labels are background). The images are read as :func:`analyze_study`
    reads them; levels, endplates and grades are modic's. No network is loaded
    (torch is not even imported with the rules and learned methods); the
    upside-down check, which segments a flipped copy, is left out.
    """
    label_classes(mapping)
    config = _settings(settings, method)
    images = load_study(
        path, t1=t1, t2=t2, t1_uid=t1_uid, t2_uid=t2_uid,
        config=config.io, selection=config.series_selection, checks=config.input_checks,
    )
    label_map = labels if isinstance(labels, Volume) else read_volume(labels, config=config.io)
    source = "labels" if isinstance(labels, Volume) else Path(labels).name
    return grade_images(images, label_map, mapping=mapping, settings=config, source=source)


def grade_images(
    images: StudyImages, labels: Volume, *, mapping: Mapping[int, str], settings: SettingsSource = None, source: str
) -> Analysis:
    """:func:`grade_segmentation` of images already read (e.g. :func:`modic.synth.to_study_images`)."""
    probabilities = [
        probabilities_from_labels(labels, mapping, like=volume) for volume in segmentation_inputs(images)
    ]
    return Analysis.of(
        grade_probabilities(images, probabilities, config=load_settings(settings), source=f"label map '{source}'")
    )


def check_candidacy(
    analysis: StudyAnalysis | Mapping[str, Any],
    *,
    clinical: str | Path,
    policy: str | Path = "default",
    keep_identifiers: bool = False,
) -> CandidacyResult:
    """Basivertebral nerve ablation candidacy of an analysis (or a report.json dictionary), as ``modic candidacy``.

    ``clinical``: the patient's clinical facts (YAML, ``configs/clinical_template.yaml``);
    ``policy``: a shipped policy name or a policy YAML file. Pass
    ``result.to_dict()`` to :meth:`Analysis.write` to include it in the report.
    """
    report = build_report(analysis, keep_identifiers=keep_identifiers) if isinstance(analysis, StudyAnalysis) else analysis
    return evaluate_candidacy(report, load_clinical(clinical), load_policy(str(policy)))


def analyze_cohort(root: str | Path, out_dir: str | Path, **options: Any) -> BatchResult:
    """Analyze every study under ``root`` (or in a cohort CSV) into ``out_dir``, as ``modic batch``.

    ``options``: the fields of :class:`modic.batch.BatchOptions` (``workers``,
    ``device``, ``method``, ``model``, ``config`` (a YAML file of settings to
    change), ``keep_identifiers``, ``dicom``, ``retry_failed``, ``executor``,
    ...). Resumable: finished studies are skipped.
    """
    return run_batch(BatchOptions(root=Path(root), out=Path(out_dir), **options))


def _settings(settings: SettingsSource, method: str | None) -> AnalysisSettings:
    return with_method(load_settings(settings), method)
