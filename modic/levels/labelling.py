"""Name vertebrae by finding S1 and counting upwards, and flag every ambiguity.

The commonest failure of automatic level labelling is a one-level shift, so
nothing here guesses silently: a missing S1, a suspected transitional
vertebra, a gap that may hide a missed body or a missing disc each become a
flag in the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modic.levels.instances import Component
from modic.levels.names import disc_name, vertebra_name
from modic.results import Flag
from modic.settings import LevelsSettings


@dataclass
class Naming:
    vertebrae: dict[str, Component] = field(default_factory=dict)
    discs: dict[str, Component] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)


def name_levels(bones: Sequence[Component], discs: Sequence[Component], settings: LevelsSettings) -> Naming:
    """Assign anatomical names to bone and disc instances (see module docstring)."""
    naming = Naming()
    if not bones:
        naming.flags.append(Flag("no_vertebrae", "no vertebral body was found in the image"))
        return naming
    by_height = sorted(bones, key=lambda c: c.superior_mm)
    s1 = _choose_s1(by_height, float(settings.s1_fraction), naming.flags)
    if s1 is None:
        above = by_height
        naming.flags.append(
            Flag(
                "s1_not_found",
                "S1 was not identified (sacrum outside the field of view or not recognised); levels are "
                "named assuming the lowest vertebral body is L5 and may be shifted",
            )
        )
    else:
        naming.vertebrae["S1"] = s1
        above = [c for c in by_height if c.superior_mm > s1.superior_mm and c is not s1]
        below = [c for c in by_height if c.superior_mm < s1.superior_mm]
        _check_s1_size(s1, above, float(settings.min_s1_relative_size), naming.flags)
        if below:
            naming.flags.append(
                Flag("bone_below_s1", f"{len(below)} bony structure(s) below S1 were ignored", severity="info")
            )
    for offset, component in enumerate(above, start=1):
        naming.vertebrae[vertebra_name(offset)] = component

    ordered = sorted(naming.vertebrae.items(), key=lambda item: item[1].superior_mm)
    _check_gaps(ordered, float(settings.gap_factor), naming.flags)
    _assign_discs(ordered, discs, naming)
    _check_transitional(naming, discs, settings)
    return naming


def _choose_s1(by_height: Sequence[Component], threshold: float, flags: list[Flag]) -> Component | None:
    """The body with the most S1 probability mass; flag every other S1-like body that may matter.

    A rival of comparable mass makes the choice itself uncertain. A smaller
    S1-like body *above* the chosen one is counted as a lumbar vertebra even
    though the network calls it sacrum: a piece of the sacrum or a
    lumbarised S1 then shifts every name above it.
    """
    candidates = [c for c in by_height if c.s1_fraction >= threshold]
    if not candidates:
        return None
    strongest = max(candidates, key=lambda c: c.size * c.s1_fraction)
    rivals = [c for c in candidates if c is not strongest and c.size * c.s1_fraction >= 0.5 * strongest.size * strongest.s1_fraction]
    if rivals:
        flags.append(
            Flag(
                "s1_ambiguous",
                f"{len(rivals) + 1} bodies look like S1; the largest was taken as S1, so level names may be shifted",
            )
        )
    elif any(c.superior_mm > strongest.superior_mm for c in candidates if c is not strongest):
        flags.append(
            Flag(
                "s1_ambiguous",
                "a smaller body above S1 also looks like sacrum (a piece of the sacrum or a lumbarised S1); it was "
                "counted as L5, so level names may be shifted",
            )
        )
    return strongest


def _check_s1_size(s1: Component, above: Sequence[Component], minimum: float, flags: list[Flag]) -> None:
    """Flag a body named S1 much smaller than the (up to five) bodies above it.

    With the sacrum in view the S1 instance is about as large as a lumbar body;
    a much smaller one is more often the lowest lumbar body, or a piece of the
    sacrum at the edge of the field of view, taken for S1, and every name above
    it is then one level off.
    """
    lumbar = [c.size for c in above[:5]]
    if len(lumbar) < 2:
        return
    typical = float(np.median(lumbar))
    if s1.size < minimum * typical:
        flags.append(
            Flag(
                "s1_small",
                f"the body named S1 is {s1.size / typical:.2f} of the size of the lumbar bodies above it: it may be "
                "L5 or a piece of the sacrum at the edge of the image, and level names may be shifted",
            )
        )


def check_body_sizes(vertebrae: Mapping[str, Component], *, maximum: float, unit: str) -> list[Flag]:
    """Flag every named body above S1 larger than any single vertebral body can be.

    When the segmentation misses a disc, two or more bodies form one instance;
    the merged-body split needs a typical body height to recognise it, which
    it lacks when most bodies are merged or only two are in view. The body's
    size against an anatomical maximum (``maximum``, in ``unit``) catches
    what the split missed: the names above it are then too low by one level
    per missed disc.
    """
    return [
        Flag(
            "merged_bodies_suspected",
            f"{name} measures {component.size:.0f} {unit}, more than any single vertebral body ({maximum:.0f} "
            f"{unit}): it is probably several bodies joined by a missed disc, and the names above it may be shifted",
        )
        for name, component in vertebrae.items()
        if name != "S1" and component.size > maximum
    ]


def _check_gaps(ordered: Sequence[tuple[str, Component]], factor: float, flags: list[Flag]) -> None:
    if len(ordered) < 3:
        return
    centres = np.array([c.centroid_ras for _, c in ordered])
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    typical = float(np.median(steps))
    for (lower, _), (upper, _), step in zip(ordered[:-1], ordered[1:], steps):
        if step > factor * typical:
            flags.append(
                Flag(
                    "possible_missed_vertebra",
                    f"the gap between {lower} and {upper} ({step:.0f} mm) is much larger than usual "
                    f"({typical:.0f} mm): a vertebra may be missed and names above {lower} may be shifted",
                )
            )


def _assign_discs(ordered: Sequence[tuple[str, Component]], discs: Sequence[Component], naming: Naming) -> None:
    """Give each pair of neighbouring bodies the disc nearest their midpoint, within the sphere between them.

    The sphere, not the heights of the centroids, decides what lies between
    two bodies: with a steep sacral slope the L5-S1 disc's centroid can lie
    level with, or below, the centroid of S1.
    """
    free = list(discs)
    for (lower_name, lower), (upper_name, upper) in zip(ordered[:-1], ordered[1:]):
        midpoint = (lower.centroid_ras + upper.centroid_ras) / 2
        half = np.linalg.norm(upper.centroid_ras - lower.centroid_ras) / 2
        between = [d for d in free if np.linalg.norm(d.centroid_ras - midpoint) < half]
        if not between:
            naming.flags.append(
                Flag(
                    "disc_not_found",
                    f"no disc was found between {upper_name} and {lower_name} (fusion, severe degeneration or a "
                    "segmentation miss); endplate regions there are taken from the vertebral body shape",
                    severity="info",
                )
            )
            continue
        chosen = min(between, key=lambda d: np.linalg.norm(d.centroid_ras - midpoint))
        naming.discs[disc_name(upper_name, lower_name)] = chosen
        free.remove(chosen)


def _check_transitional(naming: Naming, discs: Sequence[Component], settings: LevelsSettings) -> None:
    """Flag a formed disc directly below S1 (lumbarised S1) or a hypoplastic L5-S1 disc (sacralised L5).

    A hypoplastic disc is both much smaller than L4-L5 (``transitional_disc_ratio``
    of its size) and shorter from front to back (``transitional_disc_length_ratio``
    of its length). A degenerated L5-S1 disc, common in the patients modic reads,
    is thin but keeps its length, and says nothing about the level count.

    A residual S1-S2 disc, a thin remnant seen in many adults, is normal: a
    disc below S1 counts only when it is at least ``transitional_disc_min_size``
    of the median named lumbar disc and lies within ``transitional_disc_distance``
    times the S1-to-L5 distance of S1, caudal along that axis. Disc-like
    structures further away (bowel, bladder, the lower sacrum) say nothing
    about the lumbosacral junction.
    """
    s1, l5 = naming.vertebrae.get("S1"), naming.vertebrae.get("L5")
    lumbar_discs = [d.size for name, d in naming.discs.items() if name in ("L3-L4", "L4-L5", "L5-S1")]
    if s1 is not None and l5 is not None and lumbar_discs:
        axis = l5.centroid_ras - s1.centroid_ras
        reach = float(settings.transitional_disc_distance) * float(np.linalg.norm(axis))
        typical_disc = float(np.median(lumbar_discs))
        minimum = float(settings.transitional_disc_min_size) * typical_disc
        below = [
            d for d in discs
            if d not in naming.discs.values()
            and float(np.dot(d.centroid_ras - s1.centroid_ras, axis)) < 0
            and float(np.linalg.norm(d.centroid_ras - s1.centroid_ras)) < reach
            and d.size >= minimum
        ]
        if below:
            naming.flags.append(
                Flag(
                    "transitional_vertebra_suspected",
                    f"a disc of {below[0].size / typical_disc:.2f} of the lumbar discs' size lies "
                    "directly below the body named S1: S1 may be lumbarised (transitional vertebra); names count "
                    "upwards from that body, which may differ from counting down from C2",
                )
            )
    lumbosacral = naming.discs.get("L5-S1")
    above = naming.discs.get("L4-L5")
    ratio = float(settings.transitional_disc_ratio)
    length_ratio = float(settings.transitional_disc_length_ratio)
    if (
        lumbosacral is not None and above is not None
        and lumbosacral.size < ratio * above.size
        and lumbosacral.length_mm < length_ratio * above.length_mm
    ):
        naming.flags.append(
            Flag(
                "transitional_vertebra_suspected",
                f"the L5-S1 disc is much smaller than L4-L5 ({lumbosacral.size:.0f} vs {above.size:.0f}, "
                f"{lumbosacral.length_mm:.0f} vs {above.length_mm:.0f} mm long): L5 may be sacralised (transitional "
                "vertebra); confirm the level count on a whole-spine image",
            )
        )
