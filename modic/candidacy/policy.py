"""Candidacy policies: YAML files in ``configs/candidacy/`` that list criteria and their sources.

A policy is data, not code: a new payer rule or trial protocol is a new YAML
file written with the generic criterion kinds of :mod:`modic.candidacy.criteria`.
The format is documented in ``docs/candidacy.md``; every mistake in a policy
file is a ConfigError that names the file and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modic.candidacy.criteria import ImagingModic, Kind, build_kind
from modic.config import load_yaml, resolve_config
from modic.errors import ConfigError

REQUIRED = "required"
EXCLUSION = "exclusion"
ROLES = (REQUIRED, EXCLUSION)

POLICY_FOLDER = "candidacy"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_POLICY_KEYS = ("name", "version", "description", "sources", "level_uncertainty", "criteria")
_SOURCE_KEYS = ("id", "citation", "url")
_CRITERION_KEYS = ("id", "description", "role", "kind", "params", "sources")
_UNCERTAINTY_KEYS = ("warning_codes", "downgrade_eligible")


@dataclass(frozen=True)
class Source:
    """A publication or coverage policy that a policy's criteria come from."""

    id: str
    citation: str
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "citation": self.citation, "url": self.url}


@dataclass(frozen=True)
class Criterion:
    """One named test of a policy: required (must be met) or exclusion (must not be met)."""

    id: str
    description: str
    role: str
    kind: Kind
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class LevelUncertainty:
    """Report warnings that make level naming uncertain, and whether they withhold 'eligible'."""

    warning_codes: tuple[str, ...]
    downgrade_eligible: bool


@dataclass(frozen=True)
class Policy:
    """A validated candidacy policy."""

    name: str
    version: str
    description: str
    sources: tuple[Source, ...]
    criteria: tuple[Criterion, ...]
    level_uncertainty: LevelUncertainty
    sha256: str = ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy", sha256: str = "") -> Policy:
        """Validate a policy loaded from YAML; errors start with ``source`` (the file)."""
        _known_keys(data, _POLICY_KEYS, where=source)
        name = _text(data, "name", where=source)
        version = _text(data, "version", where=source, hint='; quote it, e.g. version: "1.0"')
        description = _text(data, "description", where=source)
        sources = _sources(_required(data, "sources", where=source), where=f"{source}, sources")
        source_ids = {item.id for item in sources}
        uncertainty = _uncertainty(
            _required(data, "level_uncertainty", where=source), where=f"{source}, level_uncertainty"
        )
        raw_criteria = _required(data, "criteria", where=source)
        if not isinstance(raw_criteria, list) or not raw_criteria:
            raise ConfigError(f"{source}, criteria: must be a non-empty list, not {raw_criteria!r}")
        criteria: list[Criterion] = []
        for index, entry in enumerate(raw_criteria):
            criterion = _criterion(entry, where=f"{source}, criteria[{index}]", source_ids=source_ids)
            if any(existing.id == criterion.id for existing in criteria):
                raise ConfigError(
                    f"{source}, criteria[{index}], id: '{criterion.id}' is used twice; ids must be unique"
                )
            criteria.append(criterion)
        policy = cls(
            name=name,
            version=version,
            description=description,
            sources=sources,
            criteria=tuple(criteria),
            level_uncertainty=uncertainty,
            sha256=sha256,
        )
        users = [c.id for c in policy.criteria if c.kind.uses_targets()]
        if users and not policy.target_criteria():
            raise ConfigError(
                f"{source}: criterion '{users[0]}' counts the vertebral bodies to treat, but no required "
                "imaging_modic criterion says which levels qualify; add one"
            )
        return policy

    def target_criteria(self) -> list[ImagingModic]:
        """The required imaging_modic criteria: their qualifying levels are the levels to treat."""
        return [c.kind for c in self.criteria if c.role == REQUIRED and isinstance(c.kind, ImagingModic)]

    def clinical_fields(self) -> frozenset[str]:
        """Every clinical field this policy reads."""
        return frozenset().union(*(c.kind.clinical_fields() for c in self.criteria))

    def summary(self) -> dict[str, Any]:
        """Name, version, description, file hash and sources, for results."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "sha256": self.sha256,
            "sources": [item.as_dict() for item in self.sources],
        }


def load_policy(name_or_path: str | Path = "default") -> Policy:
    """A shipped policy by name (``default``, ``payer_strict`` ...) or a policy YAML file."""
    path = resolve_config(name_or_path, folder=POLICY_FOLDER)
    data = load_yaml(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Policy.from_mapping(data, source=f"policy '{path}'", sha256=digest)


def _criterion(entry: Any, *, where: str, source_ids: set[str]) -> Criterion:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: {entry!r} must be a mapping with {', '.join(_CRITERION_KEYS)}")
    _known_keys(entry, _CRITERION_KEYS, where=where)
    identifier = _identifier(entry, "id", where=where)
    where = f"{where} (id '{identifier}')"
    description = _text(entry, "description", where=where)
    role = _required(entry, "role", where=where)
    if role not in ROLES:
        raise ConfigError(f"{where}, role: {role!r} is not a role; accepted: {', '.join(ROLES)}")
    kind = build_kind(_required(entry, "kind", where=where), _required(entry, "params", where=where), where=where)
    cited = entry.get("sources", [])
    if not isinstance(cited, list):
        raise ConfigError(f"{where}, sources: {cited!r} must be a list of source ids")
    for item in cited:
        if item not in source_ids:
            raise ConfigError(
                f"{where}, sources: {item!r} is not the id of an entry of the policy's sources; "
                f"known: {', '.join(sorted(source_ids))}"
            )
    return Criterion(id=identifier, description=description, role=role, kind=kind, sources=tuple(cited))


def _sources(raw: Any, *, where: str) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty list of {{id, citation, url}} entries, not {raw!r}")
    sources: list[Source] = []
    for index, entry in enumerate(raw):
        place = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{place}: {entry!r} must be a mapping with id, citation and optionally url")
        _known_keys(entry, _SOURCE_KEYS, where=place)
        identifier = _identifier(entry, "id", where=place)
        if any(existing.id == identifier for existing in sources):
            raise ConfigError(f"{place}, id: '{identifier}' is used twice; source ids must be unique")
        url = entry.get("url")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ConfigError(f"{place}, url: {url!r} must be text")
        sources.append(Source(id=identifier, citation=_text(entry, "citation", where=place), url=url))
    return tuple(sources)


def _uncertainty(raw: Any, *, where: str) -> LevelUncertainty:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a mapping with warning_codes and downgrade_eligible, not {raw!r}")
    _known_keys(raw, _UNCERTAINTY_KEYS, where=where)
    codes = _required(raw, "warning_codes", where=where)
    if not isinstance(codes, list) or not all(isinstance(c, str) and _IDENTIFIER.match(c) for c in codes):
        raise ConfigError(
            f"{where}, warning_codes: {codes!r} must be a list of report warning codes such as s1_not_found"
        )
    downgrade = _required(raw, "downgrade_eligible", where=where)
    if not isinstance(downgrade, bool):
        raise ConfigError(f"{where}, downgrade_eligible: {downgrade!r} must be true or false")
    return LevelUncertainty(warning_codes=tuple(codes), downgrade_eligible=downgrade)


def _known_keys(data: Mapping[str, Any], accepted: tuple[str, ...], *, where: str) -> None:
    for key in data:
        if key not in accepted:
            raise ConfigError(f"{where}: unknown key '{key}'; accepted: {', '.join(accepted)}")


def _required(data: Mapping[str, Any], key: str, *, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required key '{key}'")
    return data[key]


def _text(data: Mapping[str, Any], key: str, *, where: str, hint: str = "") -> str:
    value = _required(data, key, where=where)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}, {key}: {value!r} must be non-empty text{hint}")
    return " ".join(value.split())


def _identifier(data: Mapping[str, Any], key: str, *, where: str) -> str:
    value = _required(data, key, where=where)
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{where}, {key}: {value!r} must be lower-case letters, digits and underscores (e.g. chronic_pain)"
        )
    return value
