"""Basivertebral nerve ablation (BVNA) candidacy: a report's Modic grades plus clinical facts, under a policy.

Research software, not a medical device. A policy (``configs/candidacy/*.yaml``)
lists required criteria and exclusions with their literature sources; the
patient's clinical facts come from a small YAML file; the imaging evidence
comes from report.json. See ``docs/candidacy.md``.

    policy = load_policy("default")
    result = evaluate_candidacy(report, load_clinical("patient.yaml"), policy)
    result.verdict            # "eligible", "not eligible" or "insufficient information"
    result.targets.bodies     # e.g. ("L4", "L5", "S1")
    report["candidacy"] = result.to_dict()
    print(result.to_text())
"""

from __future__ import annotations

from modic.candidacy.clinical import FIELDS, ClinicalFacts, load_clinical
from modic.candidacy.criteria import KINDS, MET, NOT_MET, UNKNOWN, Targets
from modic.candidacy.evaluate import (
    ELIGIBLE,
    INSUFFICIENT,
    NOT_ELIGIBLE,
    VERDICTS,
    CandidacyResult,
    CriterionResult,
    evaluate_candidacy,
)
from modic.candidacy.policy import EXCLUSION, REQUIRED, Criterion, LevelUncertainty, Policy, Source, load_policy
from modic.candidacy.text import render_text

__all__ = [
    "ELIGIBLE",
    "EXCLUSION",
    "FIELDS",
    "INSUFFICIENT",
    "KINDS",
    "MET",
    "NOT_ELIGIBLE",
    "NOT_MET",
    "REQUIRED",
    "UNKNOWN",
    "VERDICTS",
    "CandidacyResult",
    "ClinicalFacts",
    "Criterion",
    "CriterionResult",
    "LevelUncertainty",
    "Policy",
    "Source",
    "Targets",
    "evaluate_candidacy",
    "load_clinical",
    "load_policy",
    "render_text",
]
