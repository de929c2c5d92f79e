"""Read YAML configuration files with errors that name the file and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modic.errors import ConfigError
from modic.resources import config_file


MAX_DEPTH = 32
"""Deepest nesting of mappings and lists accepted in a YAML file (modic's own files need 4)."""


class _Refused(yaml.YAMLError):
    """A YAML document that parses but that modic refuses (a repeated key, too deep a nesting)."""


class _Loader(yaml.SafeLoader):
    """YAML's safe loader that also reads ``1e6`` and ``3e-4`` as numbers, and refuses repeated keys and deep nesting.

    YAML 1.1, which PyYAML follows, wants a dot and a signed exponent
    (``1.0e+6``); otherwise the value silently becomes a string, and a number
    typed the way everyone writes it would then be refused as "not a number".
    A key given twice in one mapping would silently take the last value, and a
    nesting deeper than :data:`MAX_DEPTH` would exhaust Python's recursion.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._keys: list[str] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._keys.append(str(index.value) if isinstance(index, yaml.ScalarNode) else "-")
        try:
            if len(self._keys) > MAX_DEPTH:
                path = ".".join(key for key in self._keys if key != "-")
                raise _Refused(
                    f"values are nested more than {MAX_DEPTH} levels deep (under key '{path[:200]}'); "
                    "flatten the file"
                )
            return super().compose_node(parent, index)
        finally:
            self._keys.pop()

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:
                    continue
                if first != key_node.start_mark.line + 1:
                    raise _Refused(
                        f"key '{key}' is given twice (lines {first} and {key_node.start_mark.line + 1}); keep one"
                    )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping from ``path``; a missing file or non-mapping is a ConfigError."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"config '{path}' is not a regular file; give a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file '{path}': {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {_one_line(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config file '{path}' must hold a mapping of keys to values, not {type(data).__name__}"
        )
    return dict(data)


def load_shipped(relative: str) -> dict[str, Any]:
    """Load a config shipped in ``configs/`` by its relative name."""
    return load_yaml(config_file(relative))


def resolve_config(name_or_path: str | Path, *, folder: str) -> Path:
    """A config given either as a file path or as the name of a shipped config in ``configs/folder``."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} and candidate.is_file():
        return candidate
    name = candidate.name if candidate.suffix in {".yaml", ".yml"} else f"{candidate.name}.yaml"
    try:
        return config_file(Path(folder) / name)
    except ConfigError:
        raise ConfigError(
            f"'{name_or_path}' is neither a YAML file nor a shipped config in configs/{folder}/; "
            f"shipped: {', '.join(shipped_names(folder)) or 'none'}"
        ) from None


def shipped_names(folder: str) -> list[str]:
    """Names (without .yaml) of the configs shipped in ``configs/folder``."""
    from modic.resources import configs_dir

    return sorted(p.stem for p in (configs_dir() / folder).glob("*.yaml"))


def require(mapping: Mapping[str, Any], key: str, *, where: str) -> Any:
    """Return ``mapping[key]`` or raise a ConfigError naming the missing key and its place."""
    if key not in mapping:
        raise ConfigError(f"{where}: missing required key '{key}'")
    return mapping[key]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
