"""Clinical facts about one patient, read from a small YAML file.

Every field is optional: an absent (or ``null``) field is *unknown*, and a
criterion that needs it is reported as unknown, never as met. Values are
checked strictly so that a typo cannot silently become "unknown": a wrong
type, an unknown key or an impossible value is a :class:`ConfigError` that
names the field and what it accepts. The schema is documented in
``docs/candidacy.md`` and illustrated by ``configs/clinical_template.yaml``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modic.config import load_yaml
from modic.errors import ConfigError

PAIN_TYPES: tuple[str, ...] = ("axial", "radicular", "mixed")
CONSERVATIVE_CARE: tuple[str, ...] = (
    "physical_therapy",
    "exercise",
    "nsaids",
    "oral_steroids",
    "other_analgesics",
    "activity_modification",
    "cbt",
    "multidisciplinary",
    "injections",
    "chiropractic",
    "acupuncture",
)
CONTRAINDICATIONS: tuple[str, ...] = (
    "active_infection",
    "coagulopathy",
    "pregnancy",
    "metabolic_bone_disease",
    "vertebral_fracture",
    "spinal_malignancy",
    "active_implantable_device",
    "severe_cardiopulmonary_disease",
)
LUMBAR_LEVELS: tuple[str, ...] = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")

NUMBER = "number"
INTEGER = "integer"
BOOLEAN = "boolean"
CHOICE = "choice"
CHOICES = "choices"


@dataclass(frozen=True)
class FieldSpec:
    """What one clinical field holds: its type, unit, plausible range or vocabulary."""

    kind: str
    help: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    vocabulary: tuple[str, ...] = ()

    def accepted(self) -> str:
        """The accepted values in words, for error messages and documentation."""
        if self.kind in (NUMBER, INTEGER):
            noun = "a whole number" if self.kind == INTEGER else "a number"
            return f"{noun} from {_num(self.low)} to {_num(self.high)}" + (f" ({self.unit})" if self.unit else "")
        if self.kind == BOOLEAN:
            return "true or false (yes/no also work)"
        if self.kind == CHOICE:
            return "one of " + ", ".join(self.vocabulary)
        return "a list of " + ", ".join(self.vocabulary) + " ([] for none)"


FIELDS: dict[str, FieldSpec] = {
    "age_years": FieldSpec(NUMBER, "age", unit="years", low=0, high=130),
    "skeletal_maturity": FieldSpec(BOOLEAN, "skeletally mature (closed growth plates)"),
    "pain_duration_months": FieldSpec(NUMBER, "duration of the low back pain", unit="months", low=0, high=1560),
    "pain_type": FieldSpec(CHOICE, "type of pain", vocabulary=PAIN_TYPES),
    "conservative_care_months": FieldSpec(
        NUMBER, "duration of conservative care without adequate relief", unit="months", low=0, high=1560
    ),
    "conservative_care": FieldSpec(CHOICES, "conservative treatments tried", vocabulary=CONSERVATIVE_CARE),
    "contraindications": FieldSpec(CHOICES, "contraindications present", vocabulary=CONTRAINDICATIONS),
    "prior_lumbar_surgery_levels": FieldSpec(
        CHOICES, "disc levels of any previous lumbar spine surgery", vocabulary=LUMBAR_LEVELS
    ),
    "spondylolisthesis_grade": FieldSpec(
        INTEGER,
        "largest Meyerding grade of spondylolisthesis at any level (0 = none, 5 = spondyloptosis)",
        low=0,
        high=5,
    ),
    "spondylolisthesis_mm": FieldSpec(NUMBER, "largest slip at any level", unit="mm", low=0, high=100),
    "spondylolysis": FieldSpec(BOOLEAN, "spondylolysis at any level"),
    "disc_protrusion_mm": FieldSpec(NUMBER, "largest disc protrusion or extrusion", unit="mm", low=0, high=50),
    "symptomatic_stenosis": FieldSpec(
        BOOLEAN, "symptomatic spinal stenosis (neurogenic claudication confirmed by imaging)"
    ),
    "bmi": FieldSpec(NUMBER, "body mass index", unit="kg/m2", low=5, high=150),
    "odi": FieldSpec(NUMBER, "Oswestry Disability Index", unit="points", low=0, high=100),
    "vas_pain": FieldSpec(NUMBER, "low back pain on a visual analogue scale", unit="cm", low=0, high=10),
}
"""The clinical schema: field name -> what it holds. Order is the documented order."""

DURATION_FIELDS: tuple[str, ...] = ("pain_duration_months", "conservative_care_months")


@dataclass(frozen=True)
class ClinicalFacts:
    """What is known about the patient; ``None`` means unknown. List fields hold tuples."""

    age_years: float | None = None
    skeletal_maturity: bool | None = None
    pain_duration_months: float | None = None
    pain_type: str | None = None
    conservative_care_months: float | None = None
    conservative_care: tuple[str, ...] | None = None
    contraindications: tuple[str, ...] | None = None
    prior_lumbar_surgery_levels: tuple[str, ...] | None = None
    spondylolisthesis_grade: int | None = None
    spondylolisthesis_mm: float | None = None
    spondylolysis: bool | None = None
    disc_protrusion_mm: float | None = None
    symptomatic_stenosis: bool | None = None
    bmi: float | None = None
    odi: float | None = None
    vas_pain: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "clinical facts") -> ClinicalFacts:
        """Validate ``data`` (as loaded from YAML); errors name ``source`` and the field."""
        unknown = [key for key in data if key not in FIELDS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(str(key), list(FIELDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{source}: unknown field '{key}'{hint}; accepted fields: {', '.join(FIELDS)}")
        values = {name: _checked(name, data.get(name), source=source) for name in FIELDS}
        facts = cls(**values)
        facts._check_consistency(source)
        return facts

    def value(self, name: str) -> Any:
        """The value of field ``name`` (``None`` when unknown)."""
        if name not in FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def known(self) -> dict[str, Any]:
        """The fields that are known, in schema order (lists as lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name in FIELDS
            if (value := getattr(self, name)) is not None
        }

    def _check_consistency(self, source: str) -> None:
        if self.age_years is None:
            return
        for name in DURATION_FIELDS:
            months = getattr(self, name)
            if months is not None and months > self.age_years * 12:
                raise ConfigError(
                    f"{source}: field '{name}' is {_num(months)} months, longer than the patient's age "
                    f"({_num(self.age_years)} years); correct one of them"
                )


def load_clinical(path: str | Path) -> ClinicalFacts:
    """Read and validate a clinical facts YAML file (see ``configs/clinical_template.yaml``)."""
    if Path(path).exists() and not Path(path).is_file():
        raise ConfigError(f"clinical file '{path}' is not a regular file (a folder, pipe or device); give a YAML file")
    data = load_yaml(path)
    return ClinicalFacts.from_mapping(data, source=f"clinical file '{path}'")


def _checked(name: str, value: Any, *, source: str) -> Any:
    if value is None:
        return None
    spec = FIELDS[name]
    where = f"{source}: field '{name}' ({spec.help})"
    if spec.kind in (NUMBER, INTEGER):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (spec.kind == INTEGER and not isinstance(value, int)):
            raise ConfigError(f"{where} is {_quote(value)} ({_type(value)}); expected {spec.accepted()}")
        if not math.isfinite(value) or not spec.low <= value <= spec.high:
            raise ConfigError(f"{where} is {_quote(value)}, which is impossible; expected {spec.accepted()}")
        return value
    if spec.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} is {_quote(value)} ({_type(value)}); expected {spec.accepted()}")
        return value
    if spec.kind == CHOICE:
        if not isinstance(value, str) or value not in spec.vocabulary:
            raise ConfigError(f"{where} is {_quote(value)}; expected {spec.accepted()}")
        return value
    if not isinstance(value, list):
        raise ConfigError(f"{where} is {_quote(value)} ({_type(value)}); expected {spec.accepted()}")
    for item in value:
        if not isinstance(item, str) or item not in spec.vocabulary:
            raise ConfigError(f"{where} lists {_quote(item)}; expected {spec.accepted()}")
    return tuple(item for item in spec.vocabulary if item in value)


def _quote(value: Any) -> str:
    """``value`` as written in the YAML file (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _type(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a whole number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"


__all__ = [
    "CONSERVATIVE_CARE",
    "CONTRAINDICATIONS",
    "FIELDS",
    "LUMBAR_LEVELS",
    "PAIN_TYPES",
    "ClinicalFacts",
    "FieldSpec",
    "load_clinical",
]
