"""Build the segmentation network from a MONAI bundle-style definition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from modic.errors import ConfigError


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
