"""Atomic output: write to a temporary sibling, then rename into place.

A reader (or a rerun after ``kill -9``) sees either the complete file or
folder, or nothing at all. A file system that refuses the write (no
permission, disk full, a file where a folder should be) is an
:class:`~modic.errors.OutputError`.

Temporaries are named ``.modic-tmp-<host>.<pid>-...`` after the process that
writes them, so that :func:`remove_stale_temporaries` can tell the leftovers
of a dead run from the work of a live one. Every output folder holds
``.modic-outputs.json``, the list of the files modic wrote into it:
Overwriting (``overwrite=True``, ``--overwrite``) replaces only a folder whose every file is listed there
(:func:`foreign_files`), so it never deletes anything modic did not write.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modic.errors import OutputError, OutputFolderError

TEMP_PREFIX = ".modic-tmp-"
MARKER_NAME = ".modic-outputs.json"
MARKER_SCHEMA = "modic-outputs/1"
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()


def temp_prefix(name: str = "") -> str:
    """The name prefix of a temporary made by this process: ``.modic-tmp-<host>.<pid>-<name>``."""
    return f"{TEMP_PREFIX}{_HOST}.{os.getpid()}-{name}"


def cannot_write(path: Path, exc: OSError) -> OutputError:
    """The one-line error for an output that the file system refuses (no permission, disk full, a file in the way)."""
    return OutputError(
        f"cannot write '{path}': {exc.strerror or type(exc).__name__}; "
        "check the free space and permissions there, or choose another output"
    )


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; OutputError when the file system refuses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), dir=path.parent)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def temporary_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it to ``path`` on success.

    For writers (nibabel, pydicom) that want a file name rather than bytes.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(), suffix=suffix or "".join(path.suffixes), dir=path.parent)
        os.fchmod(fd, _FILE_MODE)
        os.close(fd)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        yield Path(tmp)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise cannot_write(path, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def output_folder(path: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``path`` when the block succeeds.

    On failure the temporary folder is removed, so no partial output remains.
    The files written are listed in ``MARKER_NAME`` inside the folder. With
    ``replace`` an existing ``path`` is replaced, but only when every file in
    it was written by modic (:func:`foreign_files`); otherwise its existence is
    left to the caller to check.
    """
    path = Path(path)
    prefix = temp_prefix(path.name + "-")
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
            tmp.chmod(0o777 & ~_umask())
        except OSError as exc:
            raise cannot_write(path, exc) from None
        yield tmp
        try:
            _write_marker(tmp)
            if path.exists() and replace:
                refuse_foreign(path)
                trash = path.with_name(temp_prefix(f"old-{path.name}"))
                os.replace(path, trash)
                try:
                    os.replace(tmp, path)
                except BaseException:  # also Ctrl-C or SIGTERM: the previous output comes back
                    os.replace(trash, path)
                    raise
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as exc:
            raise cannot_write(path, exc) from None
    except BaseException:
        # By name, not by the variable: Ctrl-C or SIGTERM may strike before mkdtemp has returned it.
        with contextlib.suppress(OSError):
            for leftover in path.parent.glob(glob.escape(prefix) + "*"):
                shutil.rmtree(leftover, ignore_errors=True)
        raise


def _write_marker(folder: Path) -> None:
    """List every file under ``folder`` in its ``MARKER_NAME``."""
    files = sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()
    )
    record = {"schema": MARKER_SCHEMA, "files": [name for name in files if name != MARKER_NAME]}
    (folder / MARKER_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def foreign_files(folder: str | Path) -> list[str]:
    """Files under ``folder`` that modic did not write (paths relative to ``folder``, sorted).

    A file is modic's when the ``MARKER_NAME`` of its own folder or of a folder
    above it (up to ``folder``) lists it. Links are judged by their own name
    and never followed.
    """
    folder = Path(folder)
    listings: dict[Path, frozenset[str] | None] = {}
    foreign: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        for name in [*filenames, *(d for d in dirnames if (here / d).is_symlink())]:
            path = here / name
            if name == MARKER_NAME and _listing(here, listings) is not None:
                continue
            if not _listed(path, top=folder, listings=listings):
                foreign.append(path.relative_to(folder).as_posix())
    return sorted(foreign)


def refuse_foreign(folder: str | Path) -> None:
    """:class:`OutputFolderError` when ``folder`` holds files modic did not write (replacing it would delete them)."""
    foreign = foreign_files(folder)
    if foreign:
        shown = ", ".join(f"'{name}'" for name in foreign[:3]) + (f" and {len(foreign) - 3} more" * (len(foreign) > 3))
        raise OutputFolderError(
            f"output folder '{folder}' holds {len(foreign)} file(s) that modic did not write ({shown})",
            remedy="foreign", folder=str(folder),
        )


def _listing(folder: Path, listings: dict[Path, frozenset[str] | None]) -> frozenset[str] | None:
    """The files that ``folder``'s marker lists, or None without a valid marker."""
    if folder not in listings:
        try:
            record = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
            files = record["files"] if isinstance(record, dict) and record.get("schema") == MARKER_SCHEMA else None
            listings[folder] = frozenset(str(f) for f in files) if isinstance(files, list) else None
        except (OSError, ValueError):
            listings[folder] = None
    return listings[folder]


def _listed(path: Path, *, top: Path, listings: dict[Path, frozenset[str] | None]) -> bool:
    for owner in (path.parent, *path.parent.parents):
        listed = _listing(owner, listings)
        if listed is not None and path.relative_to(owner).as_posix() in listed:
            return True
        if owner == top:
            return False
    return False


def remove_stale_temporaries(folder: str | Path, *, every_owner: bool = False) -> int:
    """Delete the temporaries that interrupted runs left in ``folder``; returns how many.

    A temporary is stale when the process that made it (named in it, see
    :func:`temp_prefix`) no longer runs on this machine. With ``every_owner``
    (the caller holds the folder's lock, as ``modic batch`` does) every
    temporary in ``folder`` is stale. Temporaries of other machines are kept:
    their process may still be writing over a shared file system.
    """
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        if not entry.name.startswith(TEMP_PREFIX) or not (every_owner or _owner_is_dead(entry.name)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed += 1
    return removed


def _owner_is_dead(name: str) -> bool:
    """Whether the process named in a temporary's name has ended (True for names without a valid owner)."""
    owner = name[len(TEMP_PREFIX):].split("-", 1)[0]
    host, _, pid = owner.partition(".")
    if not pid.isdigit() or len(host) != len(_HOST):
        return True
    if host != _HOST:
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
