"""Atomic output: write to a temporary sibling, then rename into place.

A reader (or a rerun after ``kill -9``) sees either the complete file or
folder, or nothing at all. A file system that refuses the write (no
permission, disk full, a file where a folder should be) is an
:class:`~modic.errors.OutputError`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modic.errors import OutputError

TEMP_PREFIX = ".modic-tmp-"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()


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
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
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
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix or "".join(path.suffixes), dir=path.parent)
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
    With ``replace`` an existing ``path`` is replaced; otherwise its existence
    is left to the caller to check.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + path.name + "-", dir=path.parent))
        tmp.chmod(0o777 & ~_umask())
    except OSError as exc:
        raise cannot_write(path, exc) from None
    try:
        yield tmp
        try:
            if path.exists() and replace:
                trash = path.with_name(f"{TEMP_PREFIX}old-{path.name}-{os.getpid()}")
                os.replace(path, trash)
                try:
                    os.replace(tmp, path)
                except OSError:
                    os.replace(trash, path)
                    raise
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except OSError as exc:
            raise cannot_write(path, exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporaries left by an interrupted run in ``folder``; returns how many."""
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        if entry.name.startswith(TEMP_PREFIX):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed += 1
    return removed
