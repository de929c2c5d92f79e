"""One study through the whole analysis: segmentation -> levels/endplates -> classification.

:func:`analyze_images` is what ``modic analyze``, ``modic analyze-slice``,
batch processing and the evaluation commands all call, so every path grades
the same way.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modic.classification.grading import EndplateClassifier, LevelGrade, grade_study
from modic.config import load_shipped, load_yaml
from modic.errors import AnalysisError, ConfigError
from modic.io.study import StudyImages
from modic.levels import Flag, SpineAnatomy, build_anatomy
from modic.resources import models_dir
from modic.segmentation.bundle import LoadedBundle, load_bundle
from modic.segmentation.infer import SegmentationModel

CONFIG_SECTIONS = ("segmentation", "levels", "endplates", "classification")


def load_analysis_config(path: str | Path | None = None) -> dict[str, Any]:
    """The analysis settings: the shipped ``configs/analysis.yaml``, or a user file with the same sections."""
    config = load_yaml(path) if path is not None else load_shipped("analysis.yaml")
    missing = [s for s in CONFIG_SECTIONS if s not in config]
    if missing:
        raise ConfigError(f"analysis config {path or 'configs/analysis.yaml'} lacks section(s) {missing}")
    return config


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``; others are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} was asked for but no CUDA GPU is available; use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N")
    return device


@dataclass
class Models:
    """The loaded segmentation network and endplate classifier, reused across studies."""

    segmenter: SegmentationModel
    classifier: EndplateClassifier
    info: dict[str, Any]

    @classmethod
    def load(cls, config: Mapping[str, Any], *, device: str = "auto", bundle: str | Path | None = None) -> Models:
        from modic.classification.factory import load_classifier

        bundle_path = _bundle_path(bundle or config["segmentation"]["bundle"])
        loaded: LoadedBundle = load_bundle(bundle_path)
        segmenter = SegmentationModel(
            loaded.network,
            settings=loaded.settings,
            device=resolve_device(device),
            batch_size=int(config["segmentation"].get("batch_size", 16)),
        )
        classifier, classifier_info = load_classifier(config["classification"])
        info = {
            "segmentation": {
                "bundle": loaded.path.name,
                "version": loaded.metadata.get("version"),
                "sha256": loaded.metadata.get("modic_model_sha256"),
            },
            "classifier": classifier_info,
        }
        return cls(segmenter=segmenter, classifier=classifier, info=info)


def _bundle_path(bundle: str | Path) -> Path:
    candidate = Path(bundle)
    if candidate.is_dir():
        return candidate
    shipped = models_dir() / str(bundle)
    if shipped.is_dir():
        return shipped
    raise ConfigError(f"segmentation bundle {str(bundle)!r} is neither a folder nor a bundle shipped in {models_dir()}")


@dataclass
class StudyAnalysis:
    """Everything one analysis produced, in memory (reports are written from this)."""

    images: StudyImages
    anatomy: SpineAnatomy
    levels: list[LevelGrade]
    warnings: list[Flag]
    models: dict[str, Any]
    config: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def analyze_images(images: StudyImages, *, models: Models, config: Mapping[str, Any]) -> StudyAnalysis:
    """Segment, label and grade one study whose T2 (if any) is on the T1 grid."""
    timings: dict[str, float] = {}
    volumes = [v for v in (images.t1, images.t2) if v is not None]
    if not volumes:
        raise AnalysisError("the study has neither a T1 nor a T2 image to analyse")
    geometry = volumes[0]

    started = time.perf_counter()
    probabilities = models.segmenter.predict_fused(volumes)
    timings["segment_s"] = time.perf_counter() - started

    started = time.perf_counter()
    anatomy = build_anatomy(probabilities, geometry, levels=config["levels"], endplates=config["endplates"])
    timings["levels_s"] = time.perf_counter() - started
    if not anatomy.vertebrae:
        raise AnalysisError("no vertebral body was found: check that the images are sagittal lumbar spine MRI")

    started = time.perf_counter()
    classification = config["classification"]
    levels = grade_study(
        anatomy,
        t1=images.t1.array if images.t1 is not None else None,
        t2=images.t2.array if images.t2 is not None else None,
        classifier=models.classifier,
        config=classification,
    )
    timings["classify_s"] = time.perf_counter() - started

    warnings = list(anatomy.flags)
    if images.t1 is None:
        warnings.append(Flag("missing_t1", "no sagittal T1: Modic types cannot be determined reliably from T2 alone"))
    if images.t2 is None:
        warnings.append(Flag("missing_t2", "no sagittal T2: types 1 and 3 cannot be told apart from T1 alone"))
    threshold = float(classification["low_confidence"])
    for level in levels:
        for grade in level.endplates:
            if grade.confidence < threshold:
                warnings.append(
                    Flag("low_confidence", f"{grade.endplate}: Modic {grade.modic_type} with low confidence {grade.confidence:.2f}")
                )
    return StudyAnalysis(
        images=images,
        anatomy=anatomy,
        levels=levels,
        warnings=warnings,
        models=models.info,
        config=dict(config),
        timings=timings,
    )
