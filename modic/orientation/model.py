"""The orientation network at inference: how likely a sagittal image is upside down.

A small MONAI classifier (``models/modic_orientation``, trained by ``modic train
orientation``) reads the :func:`~modic.orientation.view.sagittal_view` of a
volume's middle slice. Its score is averaged over the picture, its front-back
mirror (a different check's business, so the answer must not depend on it),
and the flipped copies of both counted the other way round, so that a picture
and its flipped copy always score ``p`` and ``1 - p``. Four passes of a 64 x 64
picture through a 0.4 MB network: milliseconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modic.errors import ModelError
from modic.io.volume import Volume
from modic.orientation.view import sagittal_view
from modic.resources import resolve_bundle

FIX = "give a complete bundle as orientation.bundle in configs/input_checks.yaml (null turns the check off)"


@dataclass(frozen=True)
class OrientationModel:
    """The loaded orientation network and what it was trained on.

    Attributes:
        network: classifier of ``(N, 1, size, size)`` pictures; class 1 is "upside down".
        size: side of the picture in pixels.
        info: bundle name, version and weights checksum.
    """

    network: torch.nn.Module
    size: int
    info: dict[str, Any]

    def upside_down_probability(self, volume: Volume) -> float:
        """Probability that ``volume``'s pixels show the head at the bottom although its geometry says top."""
        return float(upside_down_scores(self.network, sagittal_view(volume, size=self.size)[None])[0])


@torch.no_grad()
def upside_down_scores(network: torch.nn.Module, views: np.ndarray) -> np.ndarray:
    """Upside-down probability of each ``(N, size, size)`` picture, symmetric under flips (module docstring)."""
    if not len(views):
        return np.zeros(0)
    pictures = torch.from_numpy(np.ascontiguousarray(views, dtype=np.float32))[:, None]
    mirrored = torch.flip(pictures, dims=(3,))
    batch = torch.cat([pictures, mirrored, torch.flip(pictures, dims=(2,)), torch.flip(mirrored, dims=(2,))])
    upside_down = torch.softmax(network.eval()(batch).float(), dim=1)[:, 1].reshape(4, len(views)).numpy()
    return (upside_down[0] + upside_down[1] + (1.0 - upside_down[2]) + (1.0 - upside_down[3])) / 4.0


def load_orientation_model(bundle: str | Path) -> OrientationModel:
    """Load the orientation bundle given by a shipped name or a folder; every problem is a one-line ModelError."""
    from modic.bundles import BUNDLE_FIX, read_bundle

    root = resolve_bundle(bundle, kind="orientation")
    try:
        loaded = read_bundle(root)
    except ModelError as exc:
        raise ModelError(f"orientation check: {str(exc).removesuffix('; ' + BUNDLE_FIX)}; {FIX}") from None
    size = loaded.settings.get("view_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ModelError(f"orientation bundle '{root}' has view_size {size!r} in its settings, not a size of at "
                         f"least 8 pixels; {FIX}")
    try:
        upside_down_scores(loaded.network, np.zeros((1, size, size), dtype=np.float32))
    except RuntimeError as exc:
        raise ModelError(f"orientation bundle '{root}' does not take {size} x {size} pictures "
                         f"({' '.join(str(exc).split())[:120]}); {FIX}") from None
    info = {"bundle": root.name, "version": loaded.metadata.get("version"),
            "sha256": loaded.metadata.get("modic_model_sha256")}
    return OrientationModel(network=loaded.network, size=size, info=info)
