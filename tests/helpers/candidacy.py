"""Hand-built report dictionaries and clinical facts for the candidacy tests."""

from __future__ import annotations

from typing import Any

from modic.candidacy import ClinicalFacts

# An endplate grade: a Modic type 0-3, a mixed grade "a/b" (its first type is the reported
# modic_type), "undetermined" (the images could not decide it), None for an endplate that is
# listed but not graded, or MISSING for an endplate the report does not list at all.
Grade = int | str | None
MISSING = "missing"


def report(
    levels: dict[str, tuple[Grade, Grade] | None],
    *,
    warnings: tuple[str, ...] = (),
    schema_version: str = "1.0",
) -> dict[str, Any]:
    """A minimal report.json: ``{"L4-L5": (1, 0)}`` grades L4 inferior 1 and L5 superior 0.

    A level mapped to None is listed without endplates and without a type (not graded); a level
    left out of ``levels`` is missing from the report.
    """
    entries = []
    for name, grades in levels.items():
        if grades is None:
            entries.append({"level": name, "modic_type": None, "mixed": None, "confidence": None, "endplates": []})
            continue
        upper, lower = name.split("-")
        endplates = [
            _endplate(name, grade)
            for name, grade in ((f"{upper} inferior", grades[0]), (f"{lower} superior", grades[1]))
            if grade != MISSING
        ]
        types = [e["modic_type"] for e in endplates if isinstance(e["modic_type"], int)]
        entries.append(
            {
                "level": name,
                "modic_type": max(types) if types else None,
                "mixed": None,
                "confidence": 0.9,
                "endplates": endplates,
            }
        )
    return {
        "schema": "modic-report",
        "schema_version": schema_version,
        "research_notice": "Research use only.",
        "study": {"key": "3f9a0c1d2e4b5a69", "single_slice": False},
        "levels": entries,
        "warnings": [{"code": code, "severity": "warning", "message": f"{code} message"} for code in warnings],
        "candidacy": None,
    }


def _endplate(name: str, grade: Grade) -> dict[str, Any]:
    if grade == "undetermined":
        return {"endplate": name, "modic_type": grade, "mixed": None, "confidence": 0.0, "method": "rules"}
    if isinstance(grade, str):
        first = int(grade.split("/")[0])
        return {"endplate": name, "modic_type": first, "mixed": grade, "confidence": 0.8, "method": "rules"}
    return {"endplate": name, "modic_type": grade, "mixed": None, "confidence": 0.8, "method": "rules"}


NORMAL = (0, 0)


def lumbar(**graded: tuple[Grade, Grade] | None) -> dict[str, tuple[Grade, Grade] | None]:
    """L3-L4, L4-L5 and L5-S1 all normal unless given: ``lumbar(L4_L5=(1, 0))``."""
    levels: dict[str, tuple[Grade, Grade] | None] = {"L3-L4": NORMAL, "L4-L5": NORMAL, "L5-S1": NORMAL}
    for key, grades in graded.items():
        levels[key.replace("_", "-")] = grades
    return levels


def facts(**values: Any) -> ClinicalFacts:
    return ClinicalFacts.from_mapping(values)


DEFAULT_OK = {
    "pain_duration_months": 12,
    "conservative_care_months": 8,
    "pain_type": "axial",
    "contraindications": [],
}

PAYER_OK = {
    "age_years": 45,
    "pain_duration_months": 14,
    "conservative_care_months": 7,
    "conservative_care": ["physical_therapy", "exercise", "activity_modification", "nsaids", "cbt"],
    "pain_type": "axial",
    "contraindications": [],
}

TRIAL_OK = {
    "age_years": 50,
    "skeletal_maturity": True,
    "pain_duration_months": 24,
    "conservative_care_months": 12,
    "pain_type": "axial",
    "odi": 42,
    "vas_pain": 6.5,
    "prior_lumbar_surgery_levels": [],
    "symptomatic_stenosis": False,
    "disc_protrusion_mm": 3,
    "spondylolisthesis_mm": 1,
    "spondylolysis": False,
    "bmi": 31,
    "contraindications": [],
}


def trial_levels(**graded: tuple[Grade, Grade] | None) -> dict[str, tuple[Grade, Grade] | None]:
    """L1-L2 to L5-S1 all normal unless given (the trial policy also looks at L1-L2 and L2-L3)."""
    levels: dict[str, tuple[Grade, Grade] | None] = {"L1-L2": NORMAL, "L2-L3": NORMAL}
    levels.update(lumbar())
    for key, grades in graded.items():
        levels[key.replace("_", "-")] = grades
    return levels
