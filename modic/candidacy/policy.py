"""Candidacy policies: YAML files in ``configs/candidacy/`` that list criteria and their sources.

A policy is data, not code: a new payer rule or trial protocol is a new YAML
file written with the generic criterion kinds of :mod:`modic.candidacy.criteria`.
The format is documented in ``docs/candidacy.md``; every mistake in a policy
file is a one-line ConfigError that names the file and the field, and a
misspelt key gets the closest spelling (:func:`modic.settings.unknown_key_error`).
The ``level_uncertainty`` section is built by the settings builder, so its
``warning_codes`` must be :class:`~modic.settings.WarningCode` values.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modic.candidacy.criteria import ImagingModic, Kind, build_kind
from modic.config import load_yaml, resolve_config
from modic.errors import ConfigError
from modic.settings.build import Layer, build, unknown_key_error
from modic.settings.enums import WarningCode
from modic.settings.fields import Rejected, flag, setting

REQUIRED = "required"
EXCLUSION = "exclusion"
ROLES = (REQUIRED, EXCLUSION)

POLICY_FOLDER = "candidacy"
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_POLICY_KEYS = ("name", "version", "description", "sources", "level_uncertainty", "criteria")
_SOURCE_KEYS = ("id", "citation", "url")
_CRITERION_KEYS = ("id", "description", "role", "kind", "params", "sources")


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


def _warning_codes(value: Any) -> tuple[WarningCode, ...]:
    """A list (maybe empty) of report warning codes, as :class:`WarningCode` members."""
    members = {code.value: code for code in WarningCode}
    if not isinstance(value, list):
        raise Rejected(f"a list of report warning codes, each one of {', '.join(members)}")
    for item in value:
        if item not in members:
            close = difflib.get_close_matches(str(item), list(members), n=1)
            hint = f"did you mean '{close[0]}' for {item!r}?" if close else f"{item!r} is none of them"
            raise Rejected(f"a list of report warning codes ({hint}), each one of {', '.join(members)}")
    return tuple(members[v] for v in value)


@dataclass(frozen=True, kw_only=True)
class LevelUncertainty:
    """Report warnings that make level naming uncertain, and whether they withhold 'eligible'.

    The codes are :class:`WarningCode` members (``str`` enums), so they compare
    equal to the ``code`` texts of a report's warnings.
    """

    warning_codes: tuple[WarningCode, ...] = setting(_warning_codes)
    downgrade_eligible: bool = flag()


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
    def from_mapping(
        cls, data: Mapping[str, Any], *, file: str = "(mapping given in Python)", sha256: str = ""
    ) -> Policy:
        """Validate a policy loaded from YAML; errors start with ``config <file>:``."""
        source = f"config {file}"
        _known_keys(data, _POLICY_KEYS, file=file)
        name = _text(data, "name", where=source)
        version = _text(data, "version", where=source, hint='; quote it, e.g. version: "1.0"')
        description = _text(data, "description", where=source)
        sources = _sources(_required(data, "sources", where=source), where=f"{source}, sources", file=file)
        source_ids = {item.id for item in sources}
        _required(data, "level_uncertainty", where=source)
        uncertainty = build(LevelUncertainty, [Layer(data, file)], path=("level_uncertainty",), see="docs/candidacy.md")
        raw_criteria = _required(data, "criteria", where=source)
        if not isinstance(raw_criteria, list) or not raw_criteria:
            raise ConfigError(f"{source}, criteria: must be a non-empty list, not {raw_criteria!r}")
        criteria: list[Criterion] = []
        for index, entry in enumerate(raw_criteria):
            criterion = _criterion(entry, where=f"{source}, criteria[{index}]", source_ids=source_ids,
                                   file=file, key=f"criteria[{index}]")
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
    return Policy.from_mapping(data, file=str(path), sha256=digest)


def _criterion(entry: Any, *, where: str, source_ids: set[str], file: str, key: str) -> Criterion:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: {entry!r} must be a mapping with {', '.join(_CRITERION_KEYS)}")
    _known_keys(entry, _CRITERION_KEYS, file=file, prefix=f"{key}.")
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


def _sources(raw: Any, *, where: str, file: str) -> tuple[Source, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: must be a non-empty list of {{id, citation, url}} entries, not {raw!r}")
    sources: list[Source] = []
    for index, entry in enumerate(raw):
        place = f"{where}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{place}: {entry!r} must be a mapping with id, citation and optionally url")
        _known_keys(entry, _SOURCE_KEYS, file=file, prefix=f"sources[{index}].")
        identifier = _identifier(entry, "id", where=place)
        if any(existing.id == identifier for existing in sources):
            raise ConfigError(f"{place}, id: '{identifier}' is used twice; source ids must be unique")
        url = entry.get("url")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ConfigError(f"{place}, url: {url!r} must be text")
        sources.append(Source(id=identifier, citation=_text(entry, "citation", where=place), url=url))
    return tuple(sources)


def _known_keys(data: Mapping[str, Any], accepted: tuple[str, ...], *, file: str, prefix: str = "") -> None:
    """Refuse a key the policy format does not have, suggesting the closest spelling."""
    for key in data:
        if key not in accepted:
            raise unknown_key_error(file=file, key=str(key), known=accepted, prefix=prefix, see="docs/candidacy.md")


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
