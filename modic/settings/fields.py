"""Field declarations of the settings dataclasses: each field carries the check that converts and validates its value.

A check takes the value as YAML gave it and returns the value the settings
hold (a tuple for a list, an enum member for a choice, numbers as written) or
raises :class:`Rejected` with what would be accepted. :mod:`modic.settings.build`
turns that into a one-line :class:`~modic.errors.ConfigError` naming the file
and the key.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from enum import Enum
from typing import Any

Check = Callable[[Any], Any]

CHECK = "modic_check"
"""Metadata key of a field's check."""

LEVEL = re.compile(r"^(C[2-7]|T([1-9]|1[0-2])|L[1-6]|S1)-(C[3-7]|T([1-9]|1[0-2])|L[1-6]|S1)$")


class Rejected(ValueError):
    """A value its check refuses; the message says what is accepted (e.g. ``a number between 0 and 1``)."""


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable and picklable table of texts (e.g. SOP class UID to its name)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def setting(check: Check) -> Any:
    """A required dataclass field validated by ``check`` (its value comes from the YAML files)."""
    return dataclasses.field(metadata={CHECK: check})


def omissible(declared: Any, default: Any = None) -> Any:
    """``declared`` (a field made by one of these helpers) that files may leave out, then ``default``.

    For files without shipped defaults (a clinical file: an absent field is
    unknown) and for keys that only some records use (``ti`` of an
    inversion-recovery series).
    """
    return dataclasses.field(default=default, metadata=declared.metadata)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(low: float | None = None, high: float | None = None, *, integer: bool = False) -> Any:
    """A number (an integer when ``integer``) within ``[low, high]``; kept as written (``120`` stays an int)."""

    def check(value: Any) -> Any:
        if not _is_number(value) or (integer and not isinstance(value, int)):
            raise Rejected(f"a{'n integer' if integer else ' number'}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise Rejected(f"a number between {low} and {high}" if high is not None else f"a number of at least {low}")
        return value

    return setting(check)


def optional(declared: Any) -> Any:
    """``declared`` (a field made by one of these helpers) or null."""
    inner: Check = declared.metadata[CHECK]

    def check(value: Any) -> Any:
        if value is None:
            return None
        try:
            return inner(value)
        except Rejected as exc:
            raise Rejected(f"{exc} or null") from None

    return setting(check)


def choice(kind: type[Enum]) -> Any:
    """A member of the enum ``kind``, written as its value."""

    def check(value: Any) -> Enum:
        for member in kind:
            if value == member.value:
                return member
        raise Rejected(f"one of {', '.join(str(m.value) for m in kind)}")

    return setting(check)


def choices(kind: type[Enum]) -> Any:
    """A non-empty list of members of the enum ``kind``, as a tuple."""
    inner: Check = choice(kind).metadata[CHECK]

    def check(value: Any) -> tuple[Enum, ...]:
        if not isinstance(value, list) or not value:
            raise Rejected(f"a non-empty list of {', '.join(str(m.value) for m in kind)}")
        try:
            return tuple(inner(v) for v in value)
        except Rejected as exc:
            raise Rejected(f"a non-empty list, each {exc}") from None

    return setting(check)


def flag() -> Any:
    """``true`` or ``false``."""

    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise Rejected("true or false")
        return value

    return setting(check)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Rejected("a non-empty text")
    return value


def text() -> Any:
    """A non-empty text."""
    return setting(_text)


def texts() -> Any:
    """A non-empty list of non-empty texts, as a tuple."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise Rejected("a non-empty list of non-empty texts")
        return tuple(value)

    return setting(check)


def patterns() -> Any:
    """A list of Python regular expressions (checked by compiling them), as a tuple."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise Rejected("a list of regular expressions")
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise Rejected(f"a list of valid regular expressions ({pattern!r}: {exc})") from None
        return tuple(value)

    return setting(check)


def table() -> Any:
    """A mapping of texts to texts (e.g. SOP class UID to name), as a :class:`FrozenMap`."""

    def check(value: Any) -> FrozenMap:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise Rejected("a mapping of texts to texts")
        return FrozenMap(value)

    return setting(check)


def number_range(low: float | None = None, high: float | None = None, *, strict: bool = True) -> Any:
    """Two numbers ``[low, high]`` in order (``low < high``, or ``<=`` unless ``strict``), each within the bounds."""
    order = "<" if strict else "<="
    wanted = "two numbers [low, high] with " + (f"{low} <= " if low is not None else "") + f"low {order} high"
    wanted += f" <= {high}" if high is not None else ""

    def check(value: Any) -> tuple[float, float]:
        ok = isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
        ok = ok and (low is None or value[0] >= low) and (high is None or value[1] <= high)
        ok = ok and (value[0] < value[1] if strict else value[0] <= value[1])
        if not ok:
            raise Rejected(wanted)
        return (value[0], value[1])

    return setting(check)


def levels() -> Any:
    """A non-empty list of level names such as ``L4-L5``, as a tuple."""

    def check(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and LEVEL.match(v) for v in value):
            raise Rejected("a non-empty list of levels such as [L3-L4, L4-L5, L5-S1]")
        return tuple(value)

    return setting(check)


def significance() -> Any:
    """The Modic types 0, 1, 2, 3 in some order, as a tuple."""

    def check(value: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not all(_is_number(v) for v in value) or sorted(value) != [0, 1, 2, 3]:
            raise Rejected("the types 0, 1, 2, 3 in some order")
        return tuple(int(v) for v in value)

    return setting(check)


def positive() -> Any:
    """A number above 0."""

    def check(value: Any) -> Any:
        if not _is_number(value) or not value > 0:
            raise Rejected("a positive number")
        return value

    return setting(check)
