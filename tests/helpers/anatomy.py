"""Anatomy built from a synthetic study's true label map, without the segmentation network."""

from __future__ import annotations

import numpy as np

from modic.levels import SpineAnatomy, build_anatomy
from modic.settings import load_settings
from modic.synth import SyntheticStudy

SETTINGS = load_settings()
"""The shipped settings (levels and endplates stages)."""


def one_hot(semantic: np.ndarray) -> np.ndarray:
    """Network-like class probabilities (background, body, disc, S1) of a semantic label map."""
    return np.stack([semantic == k for k in range(4)]).astype(np.float32)


def anatomy_of(study: SyntheticStudy, semantic: np.ndarray | None = None) -> SpineAnatomy:
    """The levels stage run on ``study``'s true labels (or on ``semantic``, an edited copy), shipped settings."""
    semantic = study.semantic.array.astype(int) if semantic is None else semantic
    return build_anatomy(one_hot(semantic), study.t1, levels=SETTINGS.levels, endplates=SETTINGS.endplates)
