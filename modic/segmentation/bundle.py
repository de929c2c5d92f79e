"""Read and write the segmentation model as a MONAI bundle.

Layout (MONAI bundle specification)::

    <bundle>/configs/metadata.json   version, network_data_format, provenance
    <bundle>/configs/inference.json  network_def, inferer, modic preprocessing settings
    <bundle>/models/model.pt         state dict
    <bundle>/docs/README.md          model card

``metadata.json`` also records the SHA-256 of ``model.pt`` so a damaged file
is reported as such instead of failing obscurely.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modic import atomic
from modic.errors import ConfigError, ModelError
from modic.resources import models_dir
from modic.segmentation.network import build_network

DEFAULT_BUNDLE = "spine_seg"
BUNDLE_FIX = "reinstall modic or point --model to a complete bundle"


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
    network: torch.nn.Module
    settings: PreprocessSettings
    metadata: dict[str, Any]
    path: Path


def default_bundle_path() -> Path:
    return models_dir() / DEFAULT_BUNDLE


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bundle(path: str | Path | None = None) -> LoadedBundle:
    """Load a segmentation bundle (default: the shipped one); errors are :class:`ModelError`."""
    from monai.bundle import ConfigParser

    root = Path(path) if path is not None else default_bundle_path()
    metadata = _read_json(root / "configs" / "metadata.json")
    inference_path = root / "configs" / "inference.json"
    inference = _read_json(inference_path)
    weights_path = root / "models" / "model.pt"
    if weights_path.exists() and not weights_path.is_file():
        raise ModelError(f"model weights '{weights_path}' are not a regular file; reinstall modic or retrain")
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model weights '{weights_path}': {exc.strerror or exc}; reinstall modic or retrain") from None
    expected = metadata.get("modic_model_sha256")
    if expected and sha256_bytes(blob) != expected:
        raise ModelError(
            f"model weights '{weights_path}' are corrupt (checksum mismatch); reinstall modic or retrain the bundle"
        )
    network_def = inference.get("network_def")
    if not isinstance(network_def, Mapping):
        raise ModelError(f"model bundle file '{inference_path}' has no 'network_def' mapping; {BUNDLE_FIX}")
    try:
        network = build_network(network_def)
    except ConfigError as exc:
        raise ModelError(f"model bundle file '{inference_path}': {exc}; {BUNDLE_FIX}") from None
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        network.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise ModelError(
            f"model weights '{weights_path}' cannot be loaded ({type(exc).__name__}); reinstall modic or retrain the bundle"
        ) from None
    network.eval()
    try:
        settings = PreprocessSettings.from_mapping(ConfigParser(inference)["modic"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(
            f"model bundle file '{inference_path}' lacks valid 'modic' preprocessing settings "
            f"({type(exc).__name__}: {' '.join(str(exc).split())}); {BUNDLE_FIX}"
        ) from None
    return LoadedBundle(network=network, settings=settings, metadata=metadata, path=root)


def save_bundle(
    path: str | Path,
    *,
    network: torch.nn.Module,
    network_def: Mapping[str, Any],
    settings: PreprocessSettings,
    metadata: Mapping[str, Any],
) -> Path:
    """Write a bundle (weights, inference config, metadata with checksum); returns its folder."""
    root = Path(path)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, buffer)
    blob = buffer.getvalue()
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": dict(network_def),
        "network": "$@network_def.to(@device)",
        "inferer": {"_target_": "SimpleInferer"},
        "modic": {
            "spacing_mm": settings.spacing_mm,
            "percentile_lower": settings.percentile_lower,
            "percentile_upper": settings.percentile_upper,
            "pad_multiple": settings.pad_multiple,
        },
    }
    atomic.write_bytes(root / "models" / "model.pt", blob)
    atomic.write_text(root / "configs" / "inference.json", json.dumps(inference, indent=2) + "\n")
    atomic.write_text(
        root / "configs" / "metadata.json",
        json.dumps({**metadata, "modic_model_sha256": sha256_bytes(blob)}, indent=2) + "\n",
    )
    return root


def _read_json(path: Path) -> dict[str, Any]:
    if path.exists() and not path.is_file():
        raise ModelError(f"model bundle file '{path}' is not a regular file; {BUNDLE_FIX}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"model bundle file '{path}' is missing; {BUNDLE_FIX}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model bundle file '{path}' is unreadable or not JSON ({type(exc).__name__}); {BUNDLE_FIX}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"model bundle file '{path}' holds a JSON {type(data).__name__}, not an object; {BUNDLE_FIX}")
    return data
