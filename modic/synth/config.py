"""Load and read the generator's YAML configuration (``configs/synth/*.yaml``).

A config may start with ``extends: <name>``: it is then deep-merged over that
shipped config, so ``tiny.yaml`` only lists what differs from ``default.yaml``.
:class:`Section` reads typed values and ranges with errors that name the file
and the dotted key, and draws random values from ranges and weighted choices.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modic.config import load_yaml, resolve_config
from modic.errors import ConfigError

CONFIG_FOLDER = "synth"


def load_synth_config(name_or_path: str | Path | Mapping[str, Any] = "default") -> dict[str, Any]:
    """The generator configuration: a shipped name (``"default"``, ``"tiny"``), a YAML path or a mapping.

    ``extends`` chains are resolved (a mapping may extend a shipped config
    too); the result records its origin under ``"source"``.
    """
    if isinstance(name_or_path, Mapping):
        data = copy.deepcopy(dict(name_or_path))
        source = str(data.get("source", "<mapping>"))
    else:
        path = resolve_config(name_or_path, folder=CONFIG_FOLDER)
        data = _load(path)
        source = str(path)
    seen: list[str] = [source]
    while "extends" in data:
        parent_name = data.pop("extends")
        if not isinstance(parent_name, str):
            raise ConfigError(f"{source}: 'extends' must name a shipped synth config, got {parent_name!r}")
        parent_path = resolve_config(parent_name, folder=CONFIG_FOLDER)
        if str(parent_path) in seen:
            raise ConfigError(f"{source}: 'extends' chain loops back to '{parent_path}'")
        seen.append(str(parent_path))
        data = _deep_merge(_load(parent_path), data)
    data["source"] = source
    data.setdefault("name", Path(source).stem)
    return data


def _load(path: Path) -> dict[str, Any]:
    """A YAML file's mapping, parsed once per file version (generating many studies re-reads it often)."""
    stat = path.stat()
    return copy.deepcopy(_parsed(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """Parse ``path``; the modification time and size only key the cache."""
    del mtime_ns, size
    return load_yaml(path)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Section:
    """Typed, validated access to one mapping of the config.

    Args:
        data: the mapping.
        where: the config file, for error messages.
        path: dotted key of this mapping inside the file.
    """

    def __init__(self, data: Mapping[str, Any], *, where: str, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: '{path}' must be a mapping, got {data!r}")
        self.data = data
        self.where = where
        self.path = path

    @classmethod
    def root(cls, config: Mapping[str, Any]) -> Section:
        return cls(config, where=str(config.get("source", "synth config")))

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _fail(self, key: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{self.where}: '{self._key(key)}' must be {expected}, got {value!r}")

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise ConfigError(f"{self.where}: missing required key '{self._key(key)}'")
        return self.data[key]

    def has(self, key: str) -> bool:
        return key in self.data

    def section(self, key: str) -> Section:
        return Section(self.raw(key), where=self.where, path=self._key(key))

    def sections(self, key: str) -> list[Section]:
        value = self.raw(key)
        if not isinstance(value, list) or not value:
            raise self._fail(key, "a non-empty list of mappings", value)
        return [Section(item, where=self.where, path=f"{self._key(key)}[{i}]") for i, item in enumerate(value)]

    def number(self, key: str, *, low: float | None = None, high: float | None = None) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(key, "a number", value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self._fail(key, f"a number in [{low}, {high}]", value)
        return float(value)

    def integer(self, key: str, *, low: int | None = None) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
            raise self._fail(key, f"an integer >= {low}" if low is not None else "an integer", value)
        return int(value)

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string", value)
        return value

    def probability(self, key: str) -> float:
        return self.number(key, low=0.0, high=1.0)

    def range(self, key: str) -> tuple[float, float]:
        """A ``[low, high]`` pair (a single number means a fixed value)."""
        value = self.raw(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), float(value)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]
        ):
            raise self._fail(key, "a number or a [low, high] pair with low <= high", value)
        return float(value[0]), float(value[1])

    def numbers(self, key: str, *, length: int | None = None) -> list[float]:
        value = self.raw(key)
        if (
            not isinstance(value, list)
            or not value
            or (length is not None and len(value) != length)
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            expected = f"a list of {length} numbers" if length else "a non-empty list of numbers"
            raise self._fail(key, expected, value)
        return [float(v) for v in value]

    def weights(self, key: str | None = None) -> dict[Any, float]:
        """A ``{choice: weight}`` mapping (``key`` None: this section itself) with non-negative weights."""
        value = self.data if key is None else self.raw(key)
        if (
            not isinstance(value, Mapping)
            or not value
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in value.values())
            or sum(value.values()) <= 0
        ):
            raise self._fail(key or "", "a mapping of choices to non-negative weights", value)
        return {k: float(w) for k, w in value.items()}

    # Random draws -----------------------------------------------------------------

    def draw(self, rng: np.random.Generator, key: str) -> float:
        """A uniform draw from the range ``key``."""
        low, high = self.range(key)
        return float(rng.uniform(low, high)) if high > low else low

    def draw_int(self, rng: np.random.Generator, key: str) -> int:
        """A uniform integer draw from the inclusive range ``key``."""
        low, high = self.range(key)
        if low != int(low) or high != int(high):
            raise self._fail(key, "an integer or a [low, high] pair of integers", self.raw(key))
        return int(rng.integers(int(low), int(high) + 1))

    def pick(self, rng: np.random.Generator, key: str | None = None) -> Any:
        """A weighted choice from the ``{choice: weight}`` mapping ``key`` (None: this section)."""
        options = self.weights(key)
        keys = list(options)
        p = np.array([options[k] for k in keys], dtype=float)
        return keys[int(rng.choice(len(keys), p=p / p.sum()))]

    def chance(self, rng: np.random.Generator, key: str) -> bool:
        """True with the probability ``key``."""
        return bool(rng.random() < self.probability(key))
