"""Read and write trained networks as MONAI bundles.

Layout (MONAI bundle specification, plus the model card at the top)::

    <bundle>/configs/metadata.json   version, network_data_format, provenance, metrics
    <bundle>/configs/inference.json  network_def, inferer, and a ``modic`` section of settings
    <bundle>/models/model.pt         state dict (loaded with ``weights_only=True``)
    <bundle>/MODEL_CARD.md           model card: provenance, citations, measured metrics (written with the release)
    <bundle>/docs/README.md          what the bundle is and how modic selects it; points to the card
    <bundle>/docs/data_license.txt   licences of the training data

``metadata.json`` also records the SHA-256 of ``model.pt`` so a damaged file
is reported as such instead of failing obscurely. Every problem is a
one-line :class:`~modic.errors.ModelError`.
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

BUNDLE_FIX = "reinstall modic or point --model to a complete bundle"


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: the network in eval mode, its definition, its metadata and its ``modic`` settings."""

    network: torch.nn.Module
    metadata: dict[str, Any]
    settings: dict[str, Any]
    path: Path
    network_def: dict[str, Any]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_network(network_def: Mapping[str, Any]) -> torch.nn.Module:
    """Instantiate ``network_def`` (``{"_target_": "UNet", ...}``) with MONAI's bundle parser."""
    from monai.bundle import ConfigParser

    if "_target_" not in network_def:
        raise ConfigError(f"network definition needs a '_target_' (e.g. 'UNet'); got keys {sorted(network_def)}")
    parser = ConfigParser({"network_def": dict(network_def)})
    try:
        network = parser.get_parsed_content("network_def")
    except Exception as exc:  # noqa: BLE001 - MONAI raises many types for a bad definition
        raise ConfigError(f"cannot build network {network_def.get('_target_')!r}: {' '.join(str(exc).split())[:300]}") from None
    if not isinstance(network, torch.nn.Module):
        raise ConfigError(f"network definition built a {type(network).__name__}, not a torch module")
    return network


def read_bundle(root: str | Path) -> Bundle:
    """Load a bundle's network (weights checked against the metadata checksum) and settings."""
    from monai.bundle import ConfigParser

    root = Path(root)
    metadata = _read_json(root / "configs" / "metadata.json")
    inference_path = root / "configs" / "inference.json"
    inference = _read_json(inference_path)
    weights_path = root / "models" / "model.pt"
    if weights_path.exists() and not weights_path.is_file():
        raise ModelError(f"model weights '{weights_path}' are not a regular file; {BUNDLE_FIX}")
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model weights '{weights_path}': {exc.strerror or exc}; {BUNDLE_FIX}") from None
    expected = metadata.get("modic_model_sha256")
    if expected and sha256_bytes(blob) != expected:
        raise ModelError(f"model weights '{weights_path}' are corrupt (checksum mismatch); {BUNDLE_FIX}")
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
        raise ModelError(f"model weights '{weights_path}' cannot be loaded ({type(exc).__name__}); {BUNDLE_FIX}") from None
    network.eval()
    try:
        settings = ConfigParser(inference)["modic"]
    except (KeyError, TypeError, ValueError):
        settings = None
    if not isinstance(settings, Mapping):
        raise ModelError(f"model bundle file '{inference_path}' lacks a 'modic' settings mapping; {BUNDLE_FIX}")
    return Bundle(network=network, metadata=metadata, settings=dict(settings), path=root, network_def=dict(network_def))


def write_bundle(
    root: str | Path,
    *,
    network: torch.nn.Module,
    network_def: Mapping[str, Any],
    settings: Mapping[str, Any],
    metadata: Mapping[str, Any],
    inferer: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights, ``inference.json`` and ``metadata.json`` (with the weights' checksum); returns the folder."""
    root = Path(root)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, buffer)
    blob = buffer.getvalue()
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": dict(network_def),
        "network": "$@network_def.to(@device)",
        "inferer": dict(inferer or {"_target_": "SimpleInferer"}),
        "modic": dict(settings),
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
