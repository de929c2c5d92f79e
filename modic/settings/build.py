"""Settings dataclasses from YAML mappings, and back: merge, validation and one-line errors in one pass.

The values come from layers: the shipped files first, then a user file whose
keys replace theirs. A section (a field whose type is a settings dataclass, or
such a dataclass or None) merges key by key; any other value, lists and tables
included, is replaced whole. A field typed ``tuple[SomeSettings, ...]`` holds a
list of records, each built and checked like a section (keys named
``lumbar[0].height``). A field with a default may be left out of every file.
Every problem is a :class:`~modic.errors.ConfigError` of one line that names
the file the value came from and the key as written there.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from modic.errors import ConfigError
from modic.settings.fields import CHECK, FrozenMap, Rejected

T = TypeVar("T")

_ABSENT = object()

KeyPath = tuple[str | int, ...]
"""Where a value sits: mapping keys, and list indices for the records of a list."""


@dataclasses.dataclass(frozen=True)
class Layer:
    """One YAML mapping of settings and where it came from.

    ``root`` is the path of the section that the file's top level stands for:
    ``configs/io.yaml`` holds the ``io`` section of the analysis settings, so
    its root is ``("io",)`` and its keys are named without the ``io.`` prefix.
    """

    data: Mapping[str, Any]
    file: str
    root: tuple[str, ...] = ()

    def at(self, path: KeyPath) -> Any:
        """The value this layer gives at ``path`` (from the settings' root), or ``_ABSENT``."""
        if path[: len(self.root)] != self.root:
            return _ABSENT
        value: Any = self.data
        for key in path[len(self.root):]:
            if isinstance(key, int):
                if not isinstance(value, list) or key >= len(value):
                    return _ABSENT
            elif not isinstance(value, Mapping) or key not in value:
                return _ABSENT
            value = value[key]
        return value

    def key(self, path: KeyPath) -> str:
        """``path`` as the file writes it: dotted keys, list indices in brackets (``lumbar[0].height``)."""
        shown = ""
        for key in path[len(self.root):]:
            shown += f"[{key}]" if isinstance(key, int) else f".{key}" if shown else key
        return shown


def unknown_key_error(*, file: str, key: str, known: Iterable[str], prefix: str = "", see: str = "") -> ConfigError:
    """The one-line error for a key that nothing reads, suggesting the closest known spelling.

    Shared by every validated config (analysis settings, synth, candidacy,
    training), so that a misspelling reads the same everywhere.
    """
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known there: {', '.join(names)}"
    return ConfigError(f"config {file}: unknown key '{prefix}{key}'; {hint}{f' (see {see})' if see else ''}")


def invalid_value_error(*, file: str, key: str, value: Any, expected: str) -> ConfigError:
    """The one-line error for a value its check refused: the key, the value quoted, what is accepted."""
    return ConfigError(f"config {file}: '{key}' is {_quoted(value)}; expected {expected}")


def build(kind: type[T], layers: Sequence[Layer], *, path: KeyPath = (), see: str = "") -> T:
    """The settings dataclass ``kind`` at ``path``, each value from the last layer that gives it.

    Raises:
        ConfigError: an unknown key, a section that is not a mapping, a
            missing value or one that its field's check refuses.
    """
    hints = _nested(kind)
    names = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]
    for layer in layers:
        here = layer.at(path)
        if here is _ABSENT or here is None:
            continue
        if not isinstance(here, Mapping):
            raise invalid_value_error(file=layer.file, key=layer.key(path), value=here,
                                      expected=f"a mapping of settings such as '{names[0]}'")
        for key in here:
            if key not in names:
                prefix = f"{layer.key(path)}." if layer.key(path) else ""
                raise unknown_key_error(file=layer.file, key=str(key), known=names, prefix=prefix, see=see)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(kind):  # type: ignore[arg-type]
        sub = (*path, field.name)
        nested = hints.get(field.name)
        if nested is not None and not nested.records:
            if nested.optional and all(layer.at(sub) in (_ABSENT, None) for layer in layers):
                values[field.name] = None
            else:
                values[field.name] = build(nested.kind, layers, path=sub, see=see)
            continue
        given = [layer for layer in layers if layer.at(sub) is not _ABSENT]
        if not given and field.default is not dataclasses.MISSING:
            values[field.name] = field.default
            continue
        if not given:
            owner = next((layer for layer in layers if sub[: len(layer.root)] == layer.root), layers[0])
            raise ConfigError(f"config {owner.file}: missing '{owner.key(sub)}'{f'; see {see}' if see else ''}")
        layer = given[-1]
        value = layer.at(sub)
        if nested is not None:
            values[field.name] = _records(nested.kind, layer, sub, value, see=see)
            continue
        try:
            values[field.name] = field.metadata[CHECK](value)
        except Rejected as exc:
            raise invalid_value_error(file=layer.file, key=layer.key(sub), value=value, expected=str(exc)) from None
    return kind(**values)


def to_dict(settings: Any) -> Any:
    """Settings as plain YAML/JSON data: dataclasses as dicts, enums as their values, tuples as lists."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return {f.name: to_dict(getattr(settings, f.name)) for f in dataclasses.fields(settings)}
    if isinstance(settings, Enum):
        return settings.value
    if isinstance(settings, FrozenMap):
        return dict(settings)
    if isinstance(settings, tuple):
        return [to_dict(v) for v in settings]
    return settings


def _records(kind: type[T], layer: Layer, path: KeyPath, value: Any, *, see: str) -> tuple[T, ...]:
    """The list at ``path`` of ``layer`` (the last layer giving it: lists are replaced whole), each item a ``kind``."""
    if not isinstance(value, list) or not value:
        names = ", ".join(f.name for f in dataclasses.fields(kind))  # type: ignore[arg-type]
        raise invalid_value_error(file=layer.file, key=layer.key(path), value=value,
                                  expected=f"a non-empty list of mappings with {names}")
    return tuple(build(kind, [layer], path=(*path, index), see=see) for index in range(len(value)))


class _Nested(NamedTuple):
    """A field holding settings dataclasses: a section (``optional``: or None) or a list of ``records``."""

    kind: type
    optional: bool = False
    records: bool = False


@functools.lru_cache(maxsize=None)
def _nested(kind: type) -> dict[str, _Nested]:
    """The fields of ``kind`` that hold settings dataclasses, by name: sections, optional sections, record lists."""
    found: dict[str, _Nested] = {}
    for name, hint in typing.get_type_hints(kind).items():
        args = typing.get_args(hint)
        if _is_settings(hint):
            found[name] = _Nested(hint)
        elif isinstance(hint, types.UnionType) and len(args) == 2 and type(None) in args:
            inner = next(arg for arg in args if arg is not type(None))
            if _is_settings(inner):
                found[name] = _Nested(inner, optional=True)
        elif typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis and _is_settings(args[0]):
            found[name] = _Nested(args[0], records=True)
    return found


def _is_settings(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _quoted(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 200 else f"{shown[:197]}..."
