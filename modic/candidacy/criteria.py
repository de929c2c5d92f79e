"""Criterion kinds: the few generic tests a candidacy policy is written with.

Each kind validates its ``params`` when the policy is loaded (errors name the
policy file and the field) and evaluates to *met*, *not met* or *unknown*
with the evidence it used. Unknown input never counts as met.

Kinds and their params:

* ``clinical_min``: ``field``, ``min``, ``strict`` (default false); met when value >= min (> min).
* ``clinical_max``: ``field``, ``max``, ``strict`` (default false); met when value <= max (< max).
* ``clinical_true`` / ``clinical_false``: ``field``; met when a yes/no field is true / false.
* ``clinical_in``: ``field``, ``values``; met when a one-of field has one of ``values``.
* ``clinical_includes_all`` / ``clinical_includes_any`` / ``clinical_none_of``: ``field``,
  ``values``; met when a list field contains every one / at least one / none of ``values``.
* ``imaging_modic``: ``levels``, ``types``; met when an endplate of one of ``levels`` shows one
  of ``types`` (a mixed grade such as 2/3 shows both of its types).
* ``imaging_max_treated_bodies``: ``max``; met when at most ``max`` vertebral bodies would be
  treated (the bodies of the levels qualifying under the required ``imaging_modic`` criteria).
* ``any_of``: ``criteria``, a list of ``{kind, params}``; met when at least one is met.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from modic.candidacy.clinical import BOOLEAN, CHOICE, CHOICES, FIELDS, INTEGER, NUMBER, ClinicalFacts, FieldSpec
from modic.candidacy.imaging import (
    NOT_GRADED,
    QUALIFIES,
    ImagingView,
    LevelFinding,
    cranial_to_caudal,
    is_disc_level,
    level_bodies,
)
from modic.errors import ConfigError

MET = "met"
NOT_MET = "not met"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Outcome:
    """The result of one test: status, a one-line explanation and the evidence used."""

    status: str
    detail: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class Targets:
    """The vertebral bodies on both sides of every qualifying level.

    ``ungraded_levels`` could not be graded and might still qualify, so the
    list of bodies is complete only when there are none.
    """

    qualifying_levels: tuple[str, ...] = ()
    ungraded_levels: tuple[str, ...] = ()

    @property
    def bodies(self) -> tuple[str, ...]:
        return tuple(cranial_to_caudal(body for level in self.qualifying_levels for body in level_bodies(level)))

    @property
    def possible_bodies(self) -> tuple[str, ...]:
        levels = self.qualifying_levels + self.ungraded_levels
        return tuple(cranial_to_caudal(body for level in levels for body in level_bodies(level)))

    @property
    def complete(self) -> bool:
        return not self.ungraded_levels


@dataclass(frozen=True)
class Context:
    """Everything a criterion may look at."""

    clinical: ClinicalFacts
    imaging: ImagingView
    targets: Targets


class Kind(ABC):
    """One criterion kind with validated parameters."""

    name: ClassVar[str]
    required_params: ClassVar[tuple[str, ...]] = ()
    optional_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Any, *, where: str) -> None:
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}: must be a mapping of parameter names to values, not {params!r}")
        accepted = self.required_params + self.optional_params
        for key in params:
            if key not in accepted:
                raise ConfigError(
                    f"{where}: unknown parameter '{key}' for kind '{self.name}'; accepted: {', '.join(accepted)}"
                )
        for key in self.required_params:
            if key not in params:
                raise ConfigError(f"{where}: kind '{self.name}' needs parameter '{key}'")
        self.params = dict(params)
        self._validate(where)

    @abstractmethod
    def _validate(self, where: str) -> None:
        """Check ``self.params`` beyond their names; raise ConfigError naming ``where``."""

    @abstractmethod
    def evaluate(self, context: Context) -> Outcome:
        """Met, not met or unknown, with the evidence used."""

    def clinical_fields(self) -> frozenset[str]:
        """The clinical fields this criterion reads."""
        return frozenset()

    def uses_targets(self) -> bool:
        """Whether this criterion reads the vertebral bodies to be treated."""
        return False

    def uses_imaging(self) -> bool:
        """Whether this criterion reads the report's Modic grades."""
        return False


class _ClinicalKind(Kind):
    field_kinds: ClassVar[tuple[str, ...]] = ()

    def _validate(self, where: str) -> None:
        name = self.params["field"]
        fitting = [key for key, spec in FIELDS.items() if spec.kind in self.field_kinds]
        if not isinstance(name, str) or name not in FIELDS:
            raise ConfigError(
                f"{where}.field: {name!r} is not a clinical field; kind '{self.name}' accepts {', '.join(fitting)}"
            )
        if FIELDS[name].kind not in self.field_kinds:
            raise ConfigError(
                f"{where}.field: '{name}' holds {FIELDS[name].accepted()}, which kind '{self.name}' cannot test; "
                f"it accepts {', '.join(fitting)}"
            )
        self.field = name
        self.spec: FieldSpec = FIELDS[name]
        self._validate_more(where)

    def _validate_more(self, where: str) -> None:
        """Further checks of the parameters besides ``field``."""

    def clinical_fields(self) -> frozenset[str]:
        return frozenset({self.field})

    def evaluate(self, context: Context) -> Outcome:
        value = context.clinical.value(self.field)
        evidence = {"field": self.field, "value": list(value) if isinstance(value, tuple) else value}
        evidence.update(self._condition_evidence())
        if value is None:
            return Outcome(UNKNOWN, f"{self.field} not given (condition: {self.condition()})", evidence)
        met = self._test(value)
        return Outcome(
            MET if met else NOT_MET, f"{self.field} = {_show(value)} (condition: {self.condition()})", evidence
        )

    @abstractmethod
    def condition(self) -> str:
        """The condition in words, e.g. ``pain_duration_months >= 6``."""

    @abstractmethod
    def _condition_evidence(self) -> dict[str, Any]:
        """The parameters of the condition, for the evidence record."""

    @abstractmethod
    def _test(self, value: Any) -> bool:
        """Whether a known ``value`` meets the condition."""


class _Threshold(_ClinicalKind):
    bound: ClassVar[str]
    field_kinds = (NUMBER, INTEGER)
    optional_params = ("strict",)

    def _validate_more(self, where: str) -> None:
        bound = self.params[self.bound]
        spec = self.spec
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ConfigError(f"{where}.{self.bound}: {bound!r} is not a number")
        if not spec.low <= bound <= spec.high:  # type: ignore[operator]
            raise ConfigError(
                f"{where}.{self.bound}: {bound!r} is outside the possible values of '{self.field}': {spec.accepted()}"
            )
        strict = self.params.get("strict", False)
        if not isinstance(strict, bool):
            raise ConfigError(f"{where}.strict: {strict!r} must be true or false")
        self.threshold = bound
        self.strict = strict

    def _condition_evidence(self) -> dict[str, Any]:
        return {self.bound: self.threshold, "strict": self.strict}


class ClinicalMin(_Threshold):
    name = "clinical_min"
    bound = "min"
    required_params = ("field", "min")

    def condition(self) -> str:
        return f"{self.field} {'>' if self.strict else '>='} {_show(self.threshold)}"

    def _test(self, value: Any) -> bool:
        return bool(value > self.threshold if self.strict else value >= self.threshold)


class ClinicalMax(_Threshold):
    name = "clinical_max"
    bound = "max"
    required_params = ("field", "max")

    def condition(self) -> str:
        return f"{self.field} {'<' if self.strict else '<='} {_show(self.threshold)}"

    def _test(self, value: Any) -> bool:
        return bool(value < self.threshold if self.strict else value <= self.threshold)


class _Flag(_ClinicalKind):
    wanted: ClassVar[bool]
    field_kinds = (BOOLEAN,)
    required_params = ("field",)

    def condition(self) -> str:
        return f"{self.field} is {'true' if self.wanted else 'false'}"

    def _condition_evidence(self) -> dict[str, Any]:
        return {"expected": self.wanted}

    def _test(self, value: Any) -> bool:
        return value is self.wanted


class ClinicalTrue(_Flag):
    name = "clinical_true"
    wanted = True


class ClinicalFalse(_Flag):
    name = "clinical_false"
    wanted = False


class _Vocabulary(_ClinicalKind):
    required_params = ("field", "values")
    phrase: ClassVar[str]

    def _validate_more(self, where: str) -> None:
        values = self.params["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values: {values!r} must be a non-empty list of {self.spec.accepted()}")
        for value in values:
            if value not in self.spec.vocabulary:
                accepted = ", ".join(self.spec.vocabulary)
                raise ConfigError(f"{where}.values: {value!r} is not a value of '{self.field}'; accepted: {accepted}")
        self.values = tuple(value for value in self.spec.vocabulary if value in values)

    def condition(self) -> str:
        if self.phrase == ClinicalIn.phrase and len(self.values) == 1:
            return f"{self.field} is {self.values[0]}"
        return f"{self.field} {self.phrase} {', '.join(self.values)}"

    def _condition_evidence(self) -> dict[str, Any]:
        return {"values": list(self.values)}


class ClinicalIn(_Vocabulary):
    name = "clinical_in"
    field_kinds = (CHOICE,)
    phrase = "is one of"

    def _test(self, value: Any) -> bool:
        return value in self.values


class ClinicalIncludesAll(_Vocabulary):
    name = "clinical_includes_all"
    field_kinds = (CHOICES,)
    phrase = "includes all of"

    def _test(self, value: Any) -> bool:
        return set(self.values) <= set(value)


class ClinicalIncludesAny(_Vocabulary):
    name = "clinical_includes_any"
    field_kinds = (CHOICES,)
    phrase = "includes any of"

    def _test(self, value: Any) -> bool:
        return bool(set(self.values) & set(value))


class ClinicalNoneOf(_Vocabulary):
    name = "clinical_none_of"
    field_kinds = (CHOICES,)
    phrase = "includes none of"

    def _test(self, value: Any) -> bool:
        return not set(self.values) & set(value)


class ImagingModic(Kind):
    """Modic change of one of ``types`` at an endplate of one of ``levels``."""

    name = "imaging_modic"
    required_params = ("levels", "types")

    def _validate(self, where: str) -> None:
        levels, types = self.params["levels"], self.params["types"]
        if not isinstance(levels, list) or not levels:
            raise ConfigError(f"{where}.levels: {levels!r} must be a non-empty list of disc levels such as L4-L5")
        for level in levels:
            if not isinstance(level, str) or not is_disc_level(level):
                raise ConfigError(
                    f"{where}.levels: {level!r} is not a disc level; write the two adjacent vertebrae, upper first "
                    "(L3-L4, L4-L5, L5-S1)"
                )
        if not isinstance(types, list) or not types:
            raise ConfigError(f"{where}.types: {types!r} must be a non-empty list of Modic types 1, 2, 3")
        for modic_type in types:
            if isinstance(modic_type, bool) or modic_type not in (1, 2, 3):
                raise ConfigError(f"{where}.types: {modic_type!r} is not a Modic type; accepted: 1, 2, 3")
        self.levels: tuple[str, ...] = tuple(dict.fromkeys(levels))
        self.types: tuple[int, ...] = tuple(sorted(set(types)))

    def findings(self, imaging: ImagingView) -> list[LevelFinding]:
        return [imaging.finding(level, self.types) for level in self.levels]

    def uses_imaging(self) -> bool:
        return True

    def evaluate(self, context: Context) -> Outcome:
        findings = self.findings(context.imaging)
        wanted = set(self.types)
        qualifying = [f for f in findings if f.status == QUALIFIES]
        ungraded = [f for f in findings if f.status == NOT_GRADED]
        not_graded_names = [name for f in ungraded for name in ((f.level,) if not f.readings else f.missing_endplates)]
        evidence = {
            "levels": list(self.levels),
            "types": list(self.types),
            "qualifying_levels": [f.level for f in qualifying],
            "endplates": [
                reading.as_dict(qualifies=bool(reading.types & wanted) if reading.graded else None)
                for f in findings
                for reading in f.readings
            ],
            "not_graded": not_graded_names,
            "series": dict(context.imaging.series),
        }
        wanted_text = f"Modic type {_or(self.types)}"
        if qualifying:
            parts = []
            for finding in qualifying:
                shown = ", ".join(f"{r.endplate} {r.grade_text()}" for r in finding.readings if r.types & wanted)
                parts.append(f"{finding.level} ({shown})")
            return Outcome(MET, f"{wanted_text} at {'; '.join(parts)}", evidence)
        if ungraded:
            return Outcome(UNKNOWN, f"no {wanted_text} found, but not graded: {', '.join(not_graded_names)}", evidence)
        return Outcome(NOT_MET, f"no {wanted_text} at {', '.join(self.levels)}", evidence)


class ImagingMaxTreatedBodies(Kind):
    """At most ``max`` vertebral bodies would be treated."""

    name = "imaging_max_treated_bodies"
    required_params = ("max",)

    def _validate(self, where: str) -> None:
        limit = self.params["max"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"{where}.max: {limit!r} must be a whole number of vertebral bodies, at least 1")
        self.limit = limit

    def uses_targets(self) -> bool:
        return True

    def uses_imaging(self) -> bool:
        return True

    def evaluate(self, context: Context) -> Outcome:
        targets = context.targets
        bodies, possible = targets.bodies, targets.possible_bodies
        evidence = {
            "target_bodies": list(bodies),
            "count": len(bodies),
            "max": self.limit,
            "complete": targets.complete,
            "possible_bodies": list(possible),
            "series": dict(context.imaging.series),
        }
        listed = ", ".join(bodies) or "none"
        if len(bodies) > self.limit:
            return Outcome(
                NOT_MET, f"{len(bodies)} vertebral bodies to treat ({listed}); at most {self.limit}", evidence
            )
        if len(possible) <= self.limit:
            return Outcome(MET, f"{len(bodies)} vertebral bodies to treat ({listed}); at most {self.limit}", evidence)
        return Outcome(
            UNKNOWN,
            f"{len(bodies)} vertebral bodies to treat ({listed}), but the levels not graded "
            f"({', '.join(targets.ungraded_levels)}) could make {len(possible)}; at most {self.limit}",
            evidence,
        )


class AnyOf(Kind):
    """At least one of several alternative tests is met (e.g. skeletal maturity or adult age)."""

    name = "any_of"
    required_params = ("criteria",)

    def _validate(self, where: str) -> None:
        entries = self.params["criteria"]
        if not isinstance(entries, list) or len(entries) < 2:
            raise ConfigError(f"{where}.criteria: {entries!r} must be a list of at least two {{kind, params}} entries")
        self.alternatives: list[Kind] = []
        for index, entry in enumerate(entries):
            place = f"{where}.criteria[{index}]"
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{place}: {entry!r} must be a mapping with 'kind' and 'params'")
            for key in entry:
                if key not in ("kind", "params"):
                    raise ConfigError(f"{place}: unknown key '{key}'; accepted: kind, params")
            for key in ("kind", "params"):
                if key not in entry:
                    raise ConfigError(f"{place}: missing required key '{key}'")
            self.alternatives.append(build_kind(entry["kind"], entry["params"], where=place))

    def clinical_fields(self) -> frozenset[str]:
        return frozenset().union(*(alternative.clinical_fields() for alternative in self.alternatives))

    def uses_targets(self) -> bool:
        return any(alternative.uses_targets() for alternative in self.alternatives)

    def uses_imaging(self) -> bool:
        return any(alternative.uses_imaging() for alternative in self.alternatives)

    def evaluate(self, context: Context) -> Outcome:
        outcomes = [alternative.evaluate(context) for alternative in self.alternatives]
        statuses = {outcome.status for outcome in outcomes}
        status = MET if MET in statuses else NOT_MET if statuses == {NOT_MET} else UNKNOWN
        detail = " or ".join(f"{outcome.detail} [{outcome.status}]" for outcome in outcomes)
        evidence = {
            "alternatives": [
                {
                    "kind": alternative.name,
                    "status": outcome.status,
                    "detail": outcome.detail,
                    "evidence": outcome.evidence,
                }
                for alternative, outcome in zip(self.alternatives, outcomes, strict=True)
            ]
        }
        return Outcome(status, detail, evidence)


KINDS: dict[str, type[Kind]] = {
    kind.name: kind
    for kind in (
        ClinicalMin,
        ClinicalMax,
        ClinicalTrue,
        ClinicalFalse,
        ClinicalIn,
        ClinicalIncludesAll,
        ClinicalIncludesAny,
        ClinicalNoneOf,
        ImagingModic,
        ImagingMaxTreatedBodies,
        AnyOf,
    )
}
"""Every criterion kind a policy may use, by name."""


def build_kind(name: Any, params: Any, *, where: str) -> Kind:
    """The criterion kind ``name`` with ``params`` validated; errors name ``where``."""
    if not isinstance(name, str) or name not in KINDS:
        raise ConfigError(f"{where}, kind: unknown kind {name!r}; accepted kinds: {', '.join(KINDS)}")
    return KINDS[name](params, where=f"{where}, params")


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(str(item) for item in value) + "]" if value else "[] (none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _or(items: Sequence[Any]) -> str:
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
