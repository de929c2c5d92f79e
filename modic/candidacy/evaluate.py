"""Apply a candidacy policy to a report and a patient's clinical facts.

Verdict: any exclusion met or any required criterion not met gives
``not eligible``; otherwise any unknown criterion gives ``insufficient
information``; otherwise ``eligible``. A study read without its sagittal T1
or T2 makes every imaging criterion unknown (Modic types are defined on
both), so its imaging never decides ``eligible`` or ``not eligible``. When
the report warns that level naming is uncertain or that a reference marrow
was affected (the policy's ``level_uncertainty.warning_codes``), the result
carries that caveat, and ``eligible`` becomes ``insufficient information``
if the policy says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modic import RESEARCH_NOTICE
from modic.candidacy.clinical import ClinicalFacts
from modic.candidacy.criteria import MET, NOT_MET, UNKNOWN, Context, Outcome, Targets
from modic.candidacy.imaging import NOT_GRADED, QUALIFIES, ImagingView
from modic.candidacy.policy import EXCLUSION, REQUIRED, Policy
from modic.candidacy.text import render_text

ELIGIBLE = "eligible"
NOT_ELIGIBLE = "not eligible"
INSUFFICIENT = "insufficient information"
VERDICTS = (ELIGIBLE, NOT_ELIGIBLE, INSUFFICIENT)

RESULT_SCHEMA = "modic-candidacy"
RESULT_SCHEMA_VERSION = "1.0"
PROCEDURE = "basivertebral nerve ablation"


@dataclass(frozen=True)
class CriterionResult:
    """How one criterion of the policy came out, and on what evidence."""

    id: str
    description: str
    kind: str
    role: str
    status: str
    detail: str
    evidence: dict[str, Any]
    sources: tuple[str, ...]

    @property
    def decisive(self) -> bool:
        """Whether this criterion alone makes the patient not eligible."""
        return (self.role == EXCLUSION and self.status == MET) or (self.role == REQUIRED and self.status == NOT_MET)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "kind": self.kind,
            "role": self.role,
            "status": self.status,
            "detail": self.detail,
            "evidence": self.evidence,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class CandidacyResult:
    """The verdict with every criterion, the vertebral bodies to target and the caveats."""

    verdict: str
    reasons: tuple[str, ...]
    criteria: tuple[CriterionResult, ...]
    targets: Targets
    caveats: tuple[tuple[str, str], ...]
    downgraded: bool
    policy: Policy
    study_key: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; this is what goes into ``report["candidacy"]``."""
        return {
            "schema": RESULT_SCHEMA,
            "schema_version": RESULT_SCHEMA_VERSION,
            "research_notice": RESEARCH_NOTICE,
            "procedure": PROCEDURE,
            "study_key": self.study_key,
            "policy": self.policy.summary(),
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "target_bodies": list(self.targets.bodies),
            "qualifying_levels": list(self.targets.qualifying_levels),
            "targets_complete": self.targets.complete,
            "caveats": [{"code": code, "message": message} for code, message in self.caveats],
            "downgraded": self.downgraded,
            "criteria": [criterion.as_dict() for criterion in self.criteria],
        }

    def to_text(self) -> str:
        """Human-readable rendering, ending with the research-use notice."""
        return render_text(self)


def evaluate_candidacy(report: Mapping[str, Any], clinical: ClinicalFacts, policy: Policy) -> CandidacyResult:
    """Evaluate ``policy`` for the patient of ``report`` (a report.json dictionary) and ``clinical``."""
    imaging = ImagingView.from_report(report)
    context = Context(clinical=clinical, imaging=imaging, targets=_targets(policy, imaging))
    results = []
    for criterion in policy.criteria:
        outcome = criterion.kind.evaluate(context)
        if imaging.missing_sequences and criterion.kind.uses_imaging():
            outcome = _without_full_imaging(outcome, imaging)
        results.append(
            CriterionResult(
                id=criterion.id,
                description=criterion.description,
                kind=criterion.kind.name,
                role=criterion.role,
                status=outcome.status,
                detail=outcome.detail,
                evidence=outcome.evidence,
                sources=criterion.sources,
            )
        )
    verdict, reasons = _verdict(results)
    codes = policy.level_uncertainty.warning_codes
    caveats = tuple((code, message) for code, message in imaging.warnings if code in codes)
    downgraded = verdict == ELIGIBLE and bool(caveats) and policy.level_uncertainty.downgrade_eligible
    if downgraded:
        verdict = INSUFFICIENT
        found = ", ".join(dict.fromkeys(code for code, _ in caveats))
        reasons = (
            f"the report warns that the imaging evidence is uncertain ({found}) and policy '{policy.name}' then "
            "withholds 'eligible': confirm on the images (level names: count from C2 or use a whole-spine "
            "localizer; reference marrow: check the signal of the whole vertebral body)",
        )
    return CandidacyResult(
        verdict=verdict,
        reasons=reasons,
        criteria=tuple(results),
        targets=context.targets,
        caveats=caveats,
        downgraded=downgraded,
        policy=policy,
        study_key=imaging.study_key,
    )


def _without_full_imaging(outcome: Outcome, imaging: ImagingView) -> Outcome:
    """An imaging outcome made unknown because the study lacks a sequence Modic typing needs."""
    missing = " and ".join(imaging.missing_sequences)
    read = ", ".join(f"{role.upper()}: {name}" for role, name in imaging.series.items()) or "no series"
    detail = (
        f"the study has no sagittal {missing} (read: {read}); Modic types are defined on T1 and T2 together, "
        f"so this cannot be decided (it would read: {outcome.detail} [{outcome.status}]); add the missing series"
    )
    return Outcome(UNKNOWN, detail, {**outcome.evidence, "missing_sequences": list(imaging.missing_sequences)})


def _targets(policy: Policy, imaging: ImagingView) -> Targets:
    qualifying: dict[str, None] = {}
    ungraded: dict[str, None] = {}
    for criterion in policy.target_criteria():
        for finding in criterion.findings(imaging):
            if finding.status == QUALIFIES:
                qualifying[finding.level] = None
            elif finding.status == NOT_GRADED:
                ungraded[finding.level] = None
    return Targets(
        qualifying_levels=tuple(qualifying),
        ungraded_levels=tuple(level for level in ungraded if level not in qualifying),
    )


def _verdict(results: list[CriterionResult]) -> tuple[str, tuple[str, ...]]:
    decisive = [r for r in results if r.decisive]
    if decisive:
        return NOT_ELIGIBLE, tuple(
            f"{'exclusion' if r.role == EXCLUSION else 'required criterion'} '{r.id}' "
            f"{'applies' if r.role == EXCLUSION else 'is not met'}: {r.detail}"
            for r in decisive
        )
    unknown = [r for r in results if r.status == UNKNOWN]
    if unknown:
        return INSUFFICIENT, tuple(f"'{r.id}' is unknown: {r.detail}" for r in unknown)
    return ELIGIBLE, ("every required criterion is met and no exclusion applies",)
