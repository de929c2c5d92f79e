"""Locate the shipped ``configs/`` and ``models/`` folders.

In a source checkout (or editable install) they sit beside the package; in a
wheel they are bundled under ``modic/_bundled``. Nothing is ever downloaded.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from modic.errors import ConfigError, ModelError

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def _resource_root(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_bundled" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise ModelError(
        f"cannot find the shipped '{name}' folder next to the modic package at {_PACKAGE_DIR}; "
        "reinstall modic from a complete checkout or wheel"
    )


def configs_dir() -> Path:
    """Folder of the shipped configuration files."""
    return _resource_root("configs")


def models_dir() -> Path:
    """Folder of the shipped model bundles."""
    return _resource_root("models")


def resolve_bundle(value: str | Path, *, kind: str = "model") -> Path:
    """The folder of a model bundle given by a shipped name (``"spine_seg"``) or a path: modic's one rule.

    A bare name of a shipped bundle always means the shipped one, whatever the
    working directory holds (a folder ``spine_seg`` there does not replace the
    shipped model); anything else is a path to a bundle folder. ``kind``
    (``segmentation``, ``grading``) names the bundle in the error.

    Raises:
        ModelError: neither a shipped bundle nor a folder.
    """
    given = Path(str(value))
    shipped = models_dir() / given
    if not given.is_absolute() and len(given.parts) == 1 and shipped.is_dir():
        return shipped
    if given.is_dir():
        return given
    names = ", ".join(sorted(p.name for p in models_dir().iterdir() if (p / "configs").is_dir()))
    raise ModelError(
        f"{kind} bundle '{value}' is neither a folder nor a bundle shipped with modic; give a bundle folder "
        f"or a shipped name ({names})"
    )


def config_file(relative: str | Path) -> Path:
    """Path of a shipped config such as ``"inference.yaml"`` or ``"candidacy/default.yaml"``."""
    path = configs_dir() / relative
    if not path.is_file():
        raise ConfigError(f"shipped config '{relative}' not found in {configs_dir()}")
    return path
