"""The signal-definition classifier (Modic et al., Radiology 1988).

An endplate has the type whose voxel pattern covers the largest part of its
marrow band among the patterns that reach their minimum: ``type1_min_fraction``
for type 1, ``min_fraction`` for types 2 and 3. Type 1 needs less because its
pattern (T1 low *and* T2 high) is rare in normal marrow, whereas fatty islands
(T1 high) and dark cortex at the endplate line (T1 and T2 low) are common; a
small oedematous focus is a Modic 1 change. A second pattern above
``mixed_fraction`` makes the band mixed (e.g. ``1/2``). Confidence grows with
the distance of the deciding fraction from its threshold.
"""

from __future__ import annotations

import math

from modic.classification.features import EndplateFeatures
from modic.results import Decision
from modic.settings import RuleSettings


class RuleClassifier:
    """Threshold rules on pattern fractions (``classification.rules`` of the settings)."""

    name = "rules"

    def __init__(self, settings: RuleSettings) -> None:
        self.min_fraction = float(settings.min_fraction)
        self.minimum = {1: float(settings.type1_min_fraction), 2: self.min_fraction, 3: self.min_fraction}
        self.mixed_fraction = float(settings.mixed_fraction)
        self.scale = float(settings.confidence_scale)
        self.single_cap = float(settings.single_sequence_confidence)

    def decide(self, features: EndplateFeatures) -> Decision:
        fractions = features.pattern_fractions
        if features.band_voxels == 0:
            return Decision(0, None, 0.0, {}, note="the endplate region is empty: no marrow could be measured")
        if not fractions:
            return Decision(0, None, 0.0, {}, note="no T1: Modic type cannot be determined from T2 alone")
        # With T1 alone, "type 1" is any low T1 (oedema or sclerosis): not specific enough for the lower minimum.
        minimum = self.minimum if features.t2 is not None else dict.fromkeys(self.minimum, self.min_fraction)
        reaching = {t: f for t, f in fractions.items() if f >= minimum[t]}
        if not reaching:
            # The shortfall of the closest pattern, relative to its threshold and scaled to `min_fraction`:
            # an untouched band is as confidently unchanged whatever the types' thresholds.
            shortfall = min((minimum[t] - f) / max(minimum[t], 1e-6) for t, f in fractions.items())
            confidence = _sigmoid(shortfall * self.min_fraction / self.scale)
            modic_type, mixed = 0, None
        else:
            modic_type = max(reaching, key=lambda t: reaching[t])
            confidence = _sigmoid((reaching[modic_type] - minimum[modic_type]) / self.scale)
            others = sorted(t for t, f in fractions.items() if t != modic_type and f >= self.mixed_fraction)
            mixed = "/".join(str(t) for t in sorted([modic_type, *others])) if others else None
        note = None
        if features.t2 is None:
            confidence = min(confidence, self.single_cap)
            if modic_type == 1:
                note = "T1 only: low T1 signal may be type 1 or type 3"
        scores = {t: round(f, 4) for t, f in fractions.items()}
        return Decision(modic_type, mixed, round(confidence, 4), scores, note=note)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
