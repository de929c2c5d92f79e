"""The patch classifier (``classification.method: patch``).

A small MONAI CNN, trained by ``modic train grade`` on radiologists' level
gradings, gives each endplate the probability that its marrow is changed
from spine-aligned T1/T2 patches (:mod:`modic.classification.patches`; for a
3D series the most changed slice counts). Whether an endplate is changed is
learned; which type it is follows the signal definitions (the dominant voxel
pattern, see :mod:`modic.classification.features`), because types 1 and 3
are almost absent from radiologists' gradings. A strong type 1 or type 3
signal pattern that the network, never having seen one, would miss is kept
(``patch_rules.keep_types``).

Stored as a MONAI bundle: ``configs/inference.json`` (network_def),
``configs/metadata.json`` (patch geometry, threshold, validation metrics,
SHA-256 of the weights) and ``models/model.pt``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from modic.classification.features import EndplateFeatures
from modic.classification.patches import PatchGrid
from modic.bundles import read_bundle
from modic.errors import ModelError
from modic.resources import resolve_bundle
from modic.results import Decision
from modic.settings import ClassificationSettings, to_dict


class PatchClassifier:
    """Presence from the CNN, type from the signal pattern (see module docstring)."""

    name = "patch"
    needs_patches = True

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        grid: PatchGrid,
        threshold: float,
        keep_types: tuple[int, ...],
        keep_fraction: float,
        mixed_fraction: float,
        version: str,
    ) -> None:
        self.network = network.eval()
        self.grid = grid
        self.threshold = threshold
        self.keep_types = keep_types
        self.keep_fraction = keep_fraction
        self.mixed_fraction = mixed_fraction
        self.version = version

    @torch.no_grad()
    def probability(self, patches: np.ndarray) -> float:
        """Probability that the endplate is changed: the highest over its patches (0 without patches)."""
        if patches.shape[0] == 0:
            return 0.0
        logits = self.network(torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)))
        return float(torch.softmax(logits.float(), dim=1)[:, 1].max())

    def decide(self, features: EndplateFeatures) -> Decision:
        if features.band_voxels == 0 or features.patches is None:
            return Decision(0, None, 0.0, {}, note="the endplate region is empty: no marrow could be measured")
        changed = self.probability(features.patches)
        fractions = features.pattern_fractions
        kept = [t for t in self.keep_types if fractions.get(t, 0.0) >= self.keep_fraction]
        if changed < self.threshold and not kept:
            return Decision(0, None, round(1.0 - changed, 4), {0: round(1.0 - changed, 4), "changed": round(changed, 4)})
        candidates = {t: f for t, f in fractions.items() if t in (1, 2, 3)}
        modic_type = max(candidates, key=candidates.get) if candidates and max(candidates.values()) > 0 else 2
        if kept and changed < self.threshold:
            modic_type = max(kept, key=lambda t: fractions[t])
        others = sorted(t for t, f in candidates.items() if t != modic_type and f >= self.mixed_fraction)
        mixed = "/".join(str(t) for t in sorted([modic_type, *others])) if others else None
        note = None
        if features.t2 is None and modic_type in (1, 3):
            note = "T1 only: low T1 signal may be type 1 or type 3"
        confidence = max(changed, max(fractions.get(t, 0.0) for t in kept)) if kept else changed
        return Decision(modic_type, mixed, round(float(confidence), 4), {"changed": round(changed, 4)}, note=note)


def load_patch_classifier(config: ClassificationSettings) -> tuple[PatchClassifier, dict[str, Any]]:
    """Load the patch bundle named by ``config.patch_bundle``."""
    root = resolve_bundle(config.patch_bundle, kind="grading")
    bundle = read_bundle(root)
    metadata, settings = bundle.metadata, bundle.settings
    grid = PatchGrid.from_settings(config.patches)
    trained = settings.get("patches")
    if not isinstance(trained, Mapping) or PatchGrid.from_mapping(trained) != grid:
        raise ModelError(
            f"patch model in '{root}' was trained with patches {trained}, but the config asks for {to_dict(config.patches)}; "
            "use the trained geometry or retrain (modic train grade)"
        )
    rules = settings.get("rules", {})
    classifier = PatchClassifier(
        bundle.network,
        grid=grid,
        threshold=float(settings.get("threshold", 0.5)),
        keep_types=tuple(int(t) for t in rules.get("keep_types", (1, 3))),
        keep_fraction=float(rules.get("keep_fraction", 0.5)),
        mixed_fraction=float(config.rules.mixed_fraction),
        version=str(metadata.get("version")),
    )
    info = {"method": "patch", "bundle": root.name, "version": metadata.get("version"),
            "sha256": metadata.get("modic_model_sha256"), "threshold": classifier.threshold}
    return classifier, info

