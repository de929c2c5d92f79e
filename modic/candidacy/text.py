"""Plain-text rendering of a candidacy result for the terminal, ending with the research-use notice."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from modic import RESEARCH_NOTICE

if TYPE_CHECKING:
    from modic.candidacy.evaluate import CandidacyResult

WIDTH = 100
_INDENT = " " * 23


def render_text(result: CandidacyResult) -> str:
    """The verdict, targets, reasons, every criterion with its evidence, caveats, sources and notice."""
    policy = result.policy
    lines = [
        f"Basivertebral nerve ablation candidacy: {result.verdict.upper()}",
        f"Policy: {policy.name} {policy.version}",
    ]
    if result.study_key:
        lines.append(f"Study: {result.study_key}")
    lines.append("")

    targets = result.targets
    if targets.bodies:
        lines.append(
            f"Vertebral bodies to target: {', '.join(targets.bodies)} "
            f"(qualifying levels: {', '.join(targets.qualifying_levels)})"
        )
    else:
        lines.append("Vertebral bodies to target: none (no qualifying level found)")
    if not targets.complete:
        lines.append(f"  not graded, could add targets: {', '.join(targets.ungraded_levels)}")
    lines.append("")

    lines.append("Why:")
    lines.extend(_wrapped(reason, first="  - ", rest="    ") for reason in result.reasons)
    lines.append("")

    lines.append("Criteria:")
    for criterion in result.criteria:
        head = f"  {criterion.role:<10} {criterion.status:<9} "
        lines.append(_wrapped(f"{criterion.id}: {criterion.description}", first=head, rest=_INDENT))
        lines.append(_wrapped(criterion.detail, first=_INDENT, rest=_INDENT))
    if result.caveats:
        lines.append("")
        lines.append("Caveats: the report says the level naming may be wrong")
        for code, message in result.caveats:
            lines.append(_wrapped(f"{code}: {message}", first="  - ", rest="    "))
        if not policy.level_uncertainty.downgrade_eligible:
            lines.append("  (this policy does not withhold 'eligible' for this; check the levels yourself)")
    lines.append("")

    lines.append("Sources:")
    for source in policy.sources:
        text = f"[{source.id}] {source.citation}" + (f" {source.url}" if source.url else "")
        lines.append(_wrapped(text, first="  ", rest="    "))
    lines.append("")
    lines.append(RESEARCH_NOTICE)
    return "\n".join(lines)


def _wrapped(text: str, *, first: str, rest: str) -> str:
    return textwrap.fill(
        text, width=WIDTH, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False, break_long_words=False
    )
