"""``manifest.jsonl``: one JSON line per study attempt, appended durably.

Lines are written only by the process that runs the batch (workers return
their outcome to it), each with flush and fsync, so a ``kill -9`` loses at
most the line being written. A truncated last line is ignored when reading
and closed off before the next append.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("modic.batch")

MANIFEST_NAME = "manifest.jsonl"
MANIFEST_SCHEMA = "modic-batch-manifest/1"
STATUSES = ("ok", "failed", "skipped")


def read_manifest(path: str | Path) -> list[dict[str, Any]]:
    """All records of a manifest (empty when it does not exist); unreadable lines are skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("%s line %d is not complete JSON (interrupted write?); ignored", path.name, number)
                continue
            if isinstance(record, dict) and record.get("status") in STATUSES and record.get("source_id"):
                records.append(record)
            else:
                log.warning("%s line %d is not a study record; ignored", path.name, number)
    return records


def last_attempts(records: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The last record with status ``ok`` or ``failed`` per ``source_id`` (``skipped`` lines only repeat an ok)."""
    last: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record["status"] in ("ok", "failed"):
            last[str(record["source_id"])] = record
    return last


def attempt_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many times each source was run (records with status ``ok`` or ``failed``)."""
    counts: dict[str, int] = {}
    for record in records:
        if record["status"] in ("ok", "failed"):
            counts[str(record["source_id"])] = counts.get(str(record["source_id"]), 0) + 1
    return counts


class ManifestWriter:
    """Appends records to a manifest, one durable line each."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = None

    def __enter__(self) -> ManifestWriter:
        needs_newline = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                needs_newline = existing.read(1) != b"\n"
        self._handle = open(self.path, "a", encoding="utf-8")
        if needs_newline:
            self._write("\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line and make it durable before returning."""
        self._write(json.dumps({"schema": MANIFEST_SCHEMA, **record}, sort_keys=False, default=str) + "\n")

    def _write(self, text: str) -> None:
        if self._handle is None:
            raise RuntimeError("ManifestWriter used outside its 'with' block")
        self._handle.write(text)
        self._handle.flush()
        os.fsync(self._handle.fileno())
