"""Anatomical names of vertebrae, discs, levels and endplates."""

from __future__ import annotations

VERTEBRAE_CAUDAL_FIRST: tuple[str, ...] = (
    "S1", "L5", "L4", "L3", "L2", "L1",
    "T12", "T11", "T10", "T9", "T8", "T7", "T6", "T5", "T4", "T3", "T2", "T1",
    "C7", "C6", "C5", "C4", "C3", "C2",
)
"""Names counted upwards from S1, as a radiologist counts on a lumbar series."""


def vertebra_name(index_above_s1: int) -> str:
    """Name of the vertebra ``index_above_s1`` bodies above S1 (0 is S1)."""
    if not 0 <= index_above_s1 < len(VERTEBRAE_CAUDAL_FIRST):
        return f"V+{index_above_s1}"
    return VERTEBRAE_CAUDAL_FIRST[index_above_s1]


def disc_name(upper: str, lower: str) -> str:
    return f"{upper}-{lower}"


def level_endplates(level: str) -> tuple[str, str]:
    """The two endplates of a disc level: ``"L4-L5"`` -> ``("L4 inferior", "L5 superior")``."""
    upper, sep, lower = level.partition("-")
    if not sep or not upper or not lower:
        raise ValueError(f"level {level!r} is not of the form 'L4-L5'")
    return f"{upper} inferior", f"{lower} superior"


def endplate_parts(endplate: str) -> tuple[str, str]:
    """``"L5 superior"`` -> ``("L5", "superior")``."""
    vertebra, _, side = endplate.partition(" ")
    if side not in {"superior", "inferior"}:
        raise ValueError(f"endplate {endplate!r} is not of the form 'L5 superior'")
    return vertebra, side
