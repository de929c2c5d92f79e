"""The signal-definition classifier (Modic et al., Radiology 1988).

An endplate has the type whose voxel pattern covers at least ``min_fraction``
of its marrow band; a second pattern above ``mixed_fraction`` makes it mixed
(e.g. ``1/2``). Confidence grows with the distance of the deciding fraction
from the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from modic.classification.features import EndplateFeatures
from modic.classification.grading import Decision


class RuleClassifier:
    """Threshold rules on pattern fractions (config section ``rules``)."""

    name = "rules"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.min_fraction = float(settings["min_fraction"])
        self.mixed_fraction = float(settings["mixed_fraction"])
        self.scale = float(settings["confidence_scale"])
        self.single_cap = float(settings["single_sequence_confidence"])

    def decide(self, features: EndplateFeatures) -> Decision:
        fractions = features.pattern_fractions
        if features.band_voxels == 0:
            return Decision(0, None, 0.0, {}, note="the endplate region is empty: no marrow could be measured")
        if not fractions:
            return Decision(0, None, 0.0, {}, note="no T1: Modic type cannot be determined from T2 alone")
        ranked = sorted(fractions.items(), key=lambda item: item[1], reverse=True)
        best_type, best = ranked[0]
        if best < self.min_fraction:
            confidence = _sigmoid((self.min_fraction - best) / self.scale)
            modic_type, mixed = 0, None
        else:
            confidence = _sigmoid((best - self.min_fraction) / self.scale)
            modic_type = best_type
            others = sorted(t for t, f in ranked[1:] if f >= self.mixed_fraction)
            mixed = "/".join(str(t) for t in sorted([best_type, *others])) if others else None
        note = None
        if features.t2 is None:
            confidence = min(confidence, self.single_cap)
            if modic_type == 1:
                note = "T1 only: low T1 signal may be type 1 or type 3"
        scores = {t: round(f, 4) for t, f in fractions.items()}
        return Decision(modic_type, mixed, round(confidence, 4), scores, note=note)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
