"""The learned endplate classifier (``classification.method: learned``).

A scikit-learn model, trained by ``modic train grade`` on radiologists'
gradings (SPIDER) plus synthetic type 1/3 endplates, maps the signal features
of :mod:`modic.classification.features` to probabilities of Modic 0, 1, 2 and
3. The model is stored with skops (no pickle); only the types listed in
:data:`TRUSTED_TYPES` may be loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modic.classification.features import FEATURE_NAMES, EndplateFeatures
from modic.errors import ModelError
from modic.resources import resolve_bundle
from modic.results import Decision
from modic.settings import ClassificationSettings

MODEL_FILE = "model.skops"
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
)


class LearnedClassifier:
    """Wraps a fitted scikit-learn classifier with ``predict_proba`` over Modic types."""

    name = "learned"

    def __init__(self, model: Any, *, classes: Sequence[int], mixed_fraction: float, version: str) -> None:
        self.model = model
        self.classes = [int(c) for c in classes]
        self.mixed_fraction = mixed_fraction
        self.version = version

    def decide(self, features: EndplateFeatures) -> Decision:
        if features.band_voxels == 0 or (features.t1 is None and features.t2 is None):
            return Decision(0, None, 0.0, {}, note="no signal could be measured in this endplate region")
        vector = features.vector()[None]
        probabilities = self.model.predict_proba(vector)[0]
        scores = {c: round(float(p), 4) for c, p in zip(self.classes, probabilities)}
        modic_type = self.classes[int(np.argmax(probabilities))]
        confidence = float(np.max(probabilities))
        mixed = None
        if modic_type:
            fractions = features.pattern_fractions
            others = sorted(t for t, f in fractions.items() if t != modic_type and t in scores and f >= self.mixed_fraction)
            if others:
                mixed = "/".join(str(t) for t in sorted([modic_type, *others]))
        note = None
        if features.t2 is None:
            note = "T1 only: the learned model saw no missing-T2 cases; treat with caution"
        return Decision(modic_type, mixed, round(confidence, 4), scores, note=note)


def bundle_path(config: ClassificationSettings) -> Path:
    return resolve_bundle(config.learned_bundle, kind="grading")


def load_learned(config: ClassificationSettings) -> tuple[LearnedClassifier, dict[str, Any]]:
    """Load the learned model bundle named by ``config.learned_bundle``."""
    import skops.io as sio

    root = bundle_path(config)
    metadata_path = root / "configs" / "metadata.json"
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        blob = (root / "models" / MODEL_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"learned grading bundle file '{exc.filename}' is missing; reinstall modic or run modic train grade") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"learned grading bundle '{root}' is unreadable ({type(exc).__name__})") from None
    if hashlib.sha256(blob).hexdigest() != metadata.get("modic_model_sha256"):
        raise ModelError(f"learned grading model in '{root}' is corrupt (checksum mismatch); reinstall modic or retrain")
    if list(metadata.get("feature_names", [])) != list(FEATURE_NAMES):
        raise ModelError(
            f"learned grading model in '{root}' was trained on other features ({len(metadata.get('feature_names', []))}); "
            "retrain it with this modic version (modic train grade)"
        )
    try:
        untrusted = set(sio.get_untrusted_types(data=blob))
        unexpected = sorted(untrusted - set(TRUSTED_TYPES))
        if unexpected:
            raise ModelError(f"learned grading model in '{root}' contains unexpected object types {unexpected}; refusing to load it")
        model = sio.loads(blob, trusted=sorted(untrusted))
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - skops raises many types for a damaged file
        raise ModelError(f"learned grading model in '{root}' cannot be loaded ({type(exc).__name__}); reinstall or retrain") from None
    classifier = LearnedClassifier(
        model,
        classes=metadata["classes"],
        mixed_fraction=float(config.rules.mixed_fraction),
        version=str(metadata.get("version")),
    )
    info = {
        "method": "learned",
        "bundle": root.name,
        "version": metadata.get("version"),
        "model": metadata.get("model_kind"),
        "sha256": metadata.get("modic_model_sha256"),
    }
    return classifier, info

