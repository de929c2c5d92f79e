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
from modic.resources import resolve_bundle
from modic.settings.fields import number, omissible, positive

DEFAULT_BUNDLE = "spine_seg"


@dataclass(frozen=True)
class PreprocessSettings:
    """How images are brought to the network (stored in the bundle's ``modic`` section).

    Its fields carry the settings checks, so that a training config's
    ``preprocessing`` section is built and checked by the settings builder.
    """

    spacing_mm: float = positive()
    percentile_lower: float = number(0, 100)
    percentile_upper: float = number(0, 100)
    pad_multiple: int = omissible(number(1, integer=True), 16)

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
    ``slice_sigma_mm`` (``modic.slice_sigma_mm``, 0 when absent) is the
    standard deviation in mm of a Gaussian applied to the class probabilities
    across sagittal slices: the network reads each slice on its own, and the
    smoothing makes neighbouring slices agree on where a structure ends.
    ``slice_sigma_max_spacing_mm`` (``modic.slice_sigma_max_spacing_mm``, no
    limit when absent) confines it to volumes whose slices are at most that
    far apart: thin reconstructions, where neighbouring slices share
    information, not thick clinical slices, each its own measurement.
    ``slice_context_mm`` (``modic.slice_context_mm``, 0 when absent) marks a
    network that reads each slice with its neighbours that far to either side
    as two more input channels
    (:func:`modic.preprocessing.sagittal.with_slice_context`); 0: one channel.
    """

    network: torch.nn.Module
    settings: PreprocessSettings
    metadata: dict[str, Any]
    path: Path
    background_weight: float = 1.0
    slice_sigma_mm: float = 0.0
    slice_sigma_max_spacing_mm: float | None = None
    slice_context_mm: float = 0.0


def network_input_channels(slice_context_mm: float) -> int:
    """Input channels of a network with this ``slice_context_mm``: 1 slice, or 3 (a slice between its neighbours)."""
    return 3 if slice_context_mm > 0 else 1


def default_bundle_path() -> Path:
    return resolve_bundle(DEFAULT_BUNDLE, kind="segmentation")


def load_bundle(source: str | Path | None = None) -> LoadedBundle:
    """Load a segmentation bundle by shipped name or folder (:func:`modic.resources.resolve_bundle`; default: the
    shipped one); errors are :class:`ModelError`."""
    bundle = read_bundle(resolve_bundle(source if source is not None else DEFAULT_BUNDLE, kind="segmentation"))
    inference = bundle.path / "configs" / "inference.json"
    try:
        settings = PreprocessSettings.from_mapping(bundle.settings)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"model bundle file '{inference}' lacks valid 'modic' preprocessing "
            f"settings ({type(exc).__name__}: {' '.join(str(exc).split())}); {BUNDLE_FIX}"
        ) from None
    weight = bundle.settings.get("background_weight", 1.0)
    if not _is_number(weight) or not 0 < weight < float("inf"):
        raise ModelError(
            f"model bundle file '{inference}' has modic.background_weight {weight!r}; "
            "it must be a positive number (1 leaves the network's probabilities as they are)"
        )
    sigma = bundle.settings.get("slice_sigma_mm", 0.0)
    if not _is_number(sigma) or not 0 <= sigma < float("inf"):
        raise ModelError(
            f"model bundle file '{inference}' has modic.slice_sigma_mm {sigma!r}; "
            "it must be a number of millimetres, 0 or more (0 leaves each slice's probabilities as they are)"
        )
    limit = bundle.settings.get("slice_sigma_max_spacing_mm")
    if limit is not None and (not _is_number(limit) or not 0 < limit < float("inf")):
        raise ModelError(
            f"model bundle file '{inference}' has modic.slice_sigma_max_spacing_mm {limit!r}; "
            "it must be a positive number of millimetres, or absent (smoothing at any slice spacing)"
        )
    context = bundle.settings.get("slice_context_mm", 0.0)
    if not _is_number(context) or not 0 <= context < float("inf"):
        raise ModelError(
            f"model bundle file '{inference}' has modic.slice_context_mm {context!r}; "
            "it must be a number of millimetres, 0 or more (0: the network reads one slice)"
        )
    channels = network_input_channels(context)
    declared = bundle.network_def.get("in_channels", channels)
    if declared != channels:
        raise ModelError(
            f"model bundle file '{inference}' declares network_def.in_channels {declared!r} but "
            f"modic.slice_context_mm {context!r} gives the network {channels} channel(s); {BUNDLE_FIX}"
        )
    return LoadedBundle(network=bundle.network, settings=settings, metadata=bundle.metadata, path=bundle.path,
                        background_weight=float(weight), slice_sigma_mm=float(sigma),
                        slice_sigma_max_spacing_mm=None if limit is None else float(limit),
                        slice_context_mm=float(context))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def save_bundle(
    path: str | Path,
    *,
    network: torch.nn.Module,
    network_def: Mapping[str, Any],
    settings: PreprocessSettings,
    metadata: Mapping[str, Any],
    slice_context_mm: float = 0.0,
) -> Path:
    """Write a segmentation bundle (weights, inference config, metadata with checksum); returns its folder.

    ``slice_context_mm`` > 0 records that the network reads each slice with its neighbours
    (:attr:`LoadedBundle.slice_context_mm`).
    """
    modic_settings: dict[str, Any] = asdict(settings)
    if slice_context_mm > 0:
        modic_settings["slice_context_mm"] = float(slice_context_mm)
    return write_bundle(path, network=network, network_def=network_def, settings=modic_settings, metadata=metadata)
