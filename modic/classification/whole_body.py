"""Vertebral bodies whose whole marrow is changed.

Endplate bands are measured against the central marrow of the same body
(:mod:`modic.classification.features`). When a change fills the whole body,
that reference is itself abnormal, and a changed endplate reads as normal
against it. Such a body stands out against the other lumbar bodies of the
same study: its reference marrow shows a Modic pattern relative to theirs.
Such a body is reported with a warning when one of its endplates was graded
0, so that no endplate of it is read as normal without a word (an endplate
already graded changed needs no such word).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modic.results import Flag, LevelGrade
from modic.settings import VoxelSettings, WholeBodySettings

MIN_BODIES = 3
"""Fewest bodies with a measured reference needed to compare one against the others."""


def reference_signals(levels: Sequence[LevelGrade]) -> dict[str, dict[str, float]]:
    """Median reference-marrow signal per vertebra and sequence (``{"L4": {"t1": 412.0, "t2": 198.0}}``)."""
    signals: dict[str, dict[str, float]] = {}
    for level in levels:
        for grade in level.endplates:
            vertebra = grade.endplate.split()[0]
            for sequence in ("t1", "t2"):
                stats = getattr(grade.features, sequence)
                if stats is not None and np.isfinite(stats.reference_median) and stats.reference_median > 0:
                    signals.setdefault(vertebra, {}).setdefault(sequence, float(stats.reference_median))
    return signals


def body_pattern(
    t1: float | None, t2: float | None, *, voxels: VoxelSettings, whole_body: WholeBodySettings
) -> str | None:
    """The Modic pattern of a body's marrow relative to the other bodies, or None.

    Whole bodies differ more than the bands of one body do (coil shading along
    the spine moves T1 and T2 together by 10-25 % between lumbar bodies of
    SPIDER), so fat and sclerosis need the wider ``whole_body`` margins; the
    type 1 pair (T1 low with T2 high) is what shading cannot make, and keeps
    the voxel thresholds (``voxels``).
    """
    t1_high, t2_high, low = whole_body.t1_high, whole_body.t2_high, whole_body.low
    if t1 is not None and t2 is not None:
        if t1 < voxels.type1_t1_low and t2 > voxels.t2_high:
            return "type 1 (T1 low, T2 high)"
        if t1 > t1_high and t2 >= voxels.t2_iso_min:
            return "type 2 (T1 high, T2 iso to high)"
        if t1 < low and t2 < low:
            return "type 3 (T1 and T2 low)"
        return None
    if t1 is not None:
        if t1 > t1_high:
            return "type 2 (T1 high)"
        return "type 1 or 3 (T1 low)" if t1 < low else None
    if t2 is not None and (t2 > t2_high or t2 < low):
        return f"a T2 {'high' if t2 > t2_high else 'low'} signal (type needs T1)"
    return None


def whole_body_flags(
    levels: Sequence[LevelGrade], *, voxels: VoxelSettings, whole_body: WholeBodySettings
) -> list[Flag]:
    """A ``whole_body_change`` warning for each body whose marrow shows a Modic pattern against the others
    and that has an endplate graded 0.

    ``voxels`` and ``whole_body`` are the ``classification`` settings of the same names.
    """
    signals = reference_signals(levels)
    graded_0: dict[str, list[str]] = {}
    for level in levels:
        for grade in level.endplates:
            if grade.modic_type == 0:
                graded_0.setdefault(grade.endplate.split()[0], []).append(grade.endplate)
    flags = []
    for vertebra, own in signals.items():
        if vertebra not in graded_0:
            continue
        ratios: dict[str, float] = {}
        for sequence, value in own.items():
            others = [s[sequence] for name, s in signals.items() if name != vertebra and sequence in s]
            if len(others) + 1 >= MIN_BODIES:
                ratios[sequence] = value / float(np.median(others))
        pattern = body_pattern(ratios.get("t1"), ratios.get("t2"), voxels=voxels, whole_body=whole_body)
        if pattern is None:
            continue
        shown = ", ".join(f"{s.upper()} x{r:.2f}" for s, r in sorted(ratios.items()))
        flags.append(
            Flag(
                "whole_body_change",
                f"{vertebra}: the marrow of the whole body shows {pattern} against the other lumbar bodies "
                f"({shown}); {' and '.join(graded_0[vertebra])} graded 0 against this marrow may be changed: "
                "review them",
            )
        )
    return flags
