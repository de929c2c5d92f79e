"""The segmentation model's MONAI bundle: its preprocessing settings, loading and saving.

The generic bundle I/O (layout, checksum, errors) is in :mod:`modic.bundles`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from modic.bundles import BUNDLE_FIX, read_bundle, write_bundle
from modic.errors import ModelError
from modic.resources import models_dir

DEFAULT_BUNDLE = "spine_seg"


@dataclass(frozen=True)
class PreprocessSettings:
    """How images are brought to the network (stored in the bundle's ``modic`` section)."""

    spacing_mm: float
    percentile_lower: float
    percentile_upper: float
    pad_multiple: int = 16

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PreprocessSettings:
        return cls(
            spacing_mm=float(data["spacing_mm"]),
            percentile_lower=float(data["percentile_lower"]),
            percentile_upper=float(data["percentile_upper"]),
            pad_multiple=int(data.get("pad_multiple", 16)),
        )


@dataclass(frozen=True)
class LoadedBundle:
    """A segmentation bundle in memory.

    ``background_weight`` (``modic.background_weight`` in ``inference.json``,
    1 when absent) multiplies the background probability before the classes
    are renormalised: a decision calibration of this network, chosen on its
    training cases by ``scripts/calibrate_seg.py``, not a preprocessing step.
    """

    network: torch.nn.Module
    settings: PreprocessSettings
    metadata: dict[str, Any]
    path: Path
    background_weight: float = 1.0


def default_bundle_path() -> Path:
    return models_dir() / DEFAULT_BUNDLE


def load_bundle(path: str | Path | None = None) -> LoadedBundle:
    """Load a segmentation bundle (default: the shipped one); errors are :class:`ModelError`."""
    bundle = read_bundle(Path(path) if path is not None else default_bundle_path())
    try:
        settings = PreprocessSettings.from_mapping(bundle.settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"model bundle file '{bundle.path / 'configs' / 'inference.json'}' lacks valid 'modic' preprocessing "
            f"settings ({type(exc).__name__}: {' '.join(str(exc).split())}); {BUNDLE_FIX}"
        ) from None
    weight = bundle.settings.get("background_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
        raise ModelError(
            f"model bundle file '{bundle.path / 'configs' / 'inference.json'}' has modic.background_weight "
            f"{weight!r}; it must be a positive number (1 leaves the network's probabilities as they are)"
        )
    return LoadedBundle(network=bundle.network, settings=settings, metadata=bundle.metadata, path=bundle.path,
                        background_weight=float(weight))


def save_bundle(
    path: str | Path,
    *,
    network: torch.nn.Module,
    network_def: Mapping[str, Any],
    settings: PreprocessSettings,
    metadata: Mapping[str, Any],
) -> Path:
    """Write a segmentation bundle (weights, inference config, metadata with checksum); returns its folder."""
    return write_bundle(path, network=network, network_def=network_def, settings=asdict(settings), metadata=metadata)
