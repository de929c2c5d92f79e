"""Which studies a batch processes: every DICOM study under a folder, or the rows of a cohort CSV.

A study is one StudyInstanceUID wherever its files lie
(:func:`~modic.io.dicom_scan.scan_studies`): a study spread over several
folders is one study, two studies in one folder are two. A cohort CSV lists
DICOM folders (column ``study``) or NIfTI/MHA files (columns ``t1``, ``t2``),
with an optional ``id`` column; see ``docs/batch.md``.

Each :class:`StudySource` carries a ``source_id``, a stable pseudonym of the
input that keys the manifest across runs, and a ``label`` that describes it
without names, UIDs or paths.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modic.errors import InputError, ModicError, UsageError
from modic.io.dicom_scan import FolderScan, StudyIndex, scan_folder
from modic.io.study import StudyImages
from modic.report.privacy import study_key
from modic.settings import IoSettings

log = logging.getLogger("modic.batch")

CSV_COLUMNS = ("study", "t1", "t2", "id")
"""Columns of a cohort CSV that modic reads; any other column is ignored."""
SOURCE_PREFIX = "modic-batch-source-v1:"
DICOM_SUFFIXES = ("", ".dcm", ".dicom", ".ima")
"""File name endings of DICOM exports (besides numbers, as in UID-named files)."""


@dataclass(frozen=True)
class StudySource:
    """One study to process.

    Attributes:
        source_id: stable pseudonym of the input (16 hex digits); for DICOM it is
            the study key, for files a hash of the CSV ``id`` or of the file paths.
        label: what the study is, without identifiers (e.g. ``csv line 4: t1+t2 files``).
        index: the study's DICOM files, for DICOM input.
        t1: T1 NIfTI/MHA file, for file input.
        t2: T2 NIfTI/MHA file, for file input.
        key: the output key (``OUT/<key>/``) when it is known before reading
            the images (DICOM); for files it is a hash of the voxels.
        error: why the entry cannot be read at all (e.g. a CSV row naming a
            missing folder); such a source is recorded as failed without running.
        identifiers: paths, UIDs and the CSV ``id``: written to the manifest only
            with ``--keep-identifiers``.
        private: strings (paths, UIDs) replaced by ``<input>`` in error messages.
    """

    source_id: str
    label: str
    index: StudyIndex | None = None
    t1: Path | None = None
    t2: Path | None = None
    key: str | None = None
    error: str | None = None
    identifiers: Mapping[str, Any] = field(default_factory=dict)
    private: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``dicom``, ``files`` or ``invalid``."""
        if self.error is not None:
            return "invalid"
        return "dicom" if self.index is not None else "files"


def discover(root: str | Path, *, io_config: IoSettings | None = None) -> list[StudySource]:
    """Every study under the folder ``root``, or every study a cohort CSV ``root`` lists.

    Raises:
        UsageError: ``root`` is neither a folder nor a ``.csv`` file, or the CSV is malformed.
    """
    root = Path(root)
    if root.is_dir():
        return _dicom_sources(root, prefix="", io_config=io_config)
    if root.is_file() and root.suffix.lower() == ".csv":
        return read_cohort_csv(root, io_config=io_config)
    if not root.exists():
        raise UsageError(f"'{root}' does not exist; give a folder of DICOM studies or a cohort .csv file")
    raise UsageError(f"'{root}' is neither a folder nor a .csv file; give a folder of DICOM studies or a cohort CSV")


def key_of_uid(study_uid: str) -> str:
    """The output key of a DICOM study, as :func:`modic.report.privacy.study_key` computes it after reading."""
    return study_key(StudyImages(t1=None, t2=None, t2_native=None, decisions=[], study_uid=study_uid, series={}))


def _dicom_sources(folder: Path, *, prefix: str, io_config: IoSettings | None) -> list[StudySource]:
    """The studies under ``folder``, then its unusable subfolders (:func:`_unusable_folders`).

    Labels start with ``prefix`` (and ``study i/n`` when there are several).
    """
    scan = scan_folder(folder, config=io_config)
    for kind, count in sorted(scan.skipped_summary().items()):
        log.info("%d file(s) skipped under %s: %s", count, folder, kind)
    studies = scan.studies
    sources = []
    for i, study in enumerate(studies, start=1):
        where = f"{prefix} study {i}/{len(studies)}" if prefix and len(studies) > 1 else prefix
        sources.append(_dicom_source(study, prefix=where))
    return sources + _unusable_folders(scan, prefix=prefix) if studies else sources


def _unusable_folders(scan: FolderScan, *, prefix: str) -> list[StudySource]:
    """A failed source for each folder directly under the scanned root whose files were all skipped, or that
    cannot be read at all.

    Such a folder is most likely a study whose export is broken (files cut
    short, unreadable, not DICOM); counting its files as skipped would hide
    it. Only files named as DICOM files are (:func:`_may_be_dicom`), so a
    folder of NIfTI files or documents is not a broken study. The folder's
    name is kept only among the identifiers.
    """
    used = {_top_folder(scan.root, str(ds.filename)) for study in scan.studies for series in study.series
            for ds in series.instances}
    kinds: dict[str, dict[str, int]] = {}
    for item in scan.skipped:
        top = _top_folder(scan.root, item.path)
        if top and top not in used and _may_be_dicom(Path(item.path)):
            kinds.setdefault(top, {})
            kinds[top][item.kind] = kinds[top].get(item.kind, 0) + 1
    problems = {
        top: f"none of the {sum(counts.values())} file(s) of this folder is a usable DICOM image "
        f"({', '.join(f'{kind}: {n}' for kind, n in sorted(counts.items()))}); check the export (files cut short, "
        "unreadable or not DICOM), or move the folder out of the cohort"
        for top, counts in kinds.items()
    }
    for entry in sorted(scan.root.iterdir()):
        if entry.is_dir() and entry.name not in used:
            try:
                with os.scandir(entry):
                    pass
            except OSError as exc:
                problems[entry.name] = (
                    f"this folder cannot be read ({exc.strerror or type(exc).__name__}); give modic read "
                    "permission on it, or move it out of the cohort"
                )
    sources = []
    for number, top in enumerate(sorted(problems), start=1):
        path = scan.root / top
        sources.append(
            StudySource(
                source_id=_hash(f"folder={path.resolve()}"),
                label=f"{prefix + ': ' if prefix else ''}unusable folder {number}/{len(problems)}",
                error=problems[top],
                identifiers={"folder": str(path)},
                private=_longest_first([str(path), str(scan.root)]),
            )
        )
    return sources


def _may_be_dicom(path: Path) -> bool:
    """Whether a file's name is one a DICOM export uses: no extension, .dcm/.dicom/.ima, or a number (UID-like)."""
    suffix = path.suffix.lower()
    return not path.name.startswith(".") and (suffix in DICOM_SUFFIXES or suffix[1:].isdigit())


def _top_folder(root: Path, path: str) -> str:
    """The name of the folder directly under ``root`` that holds ``path`` ('' for a file directly in ``root``)."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return ""
    return parts[0] if len(parts) > 1 else ""


def _dicom_source(study: StudyIndex, *, prefix: str) -> StudySource:
    folders = sorted({str(Path(str(ds.filename)).parent) for series in study.series for ds in series.instances})
    key = key_of_uid(study.study_uid)
    uids = [study.study_uid, *(series.series_uid for series in study.series)]
    return StudySource(
        source_id=key,
        label=f"{prefix + ': ' if prefix else ''}dicom study, {len(study.series)} series, {study.n_instances} images "
        f"in {len(folders)} folder(s)",
        index=study,
        key=key,
        identifiers={"study_uid": study.study_uid, "root": str(study.root), "folders": folders},
        private=_longest_first([str(study.root), *folders, *uids]),
    )


def read_cohort_csv(path: str | Path, *, io_config: IoSettings | None = None) -> list[StudySource]:
    """The studies of a cohort CSV (UTF-8, header row; relative paths are relative to the CSV's folder).

    Columns: ``study`` (a DICOM folder; every study in it is processed) or
    ``t1`` and/or ``t2`` (NIfTI/MHA files of one study), and optionally ``id``
    (a unique label of the row, which keeps its results linked when rows are
    added or reordered; it is written to the manifest only with
    ``--keep-identifiers``). A row that cannot be used becomes a failed study;
    a malformed file is a :class:`UsageError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read cohort CSV '{path}' ({type(exc).__name__}); give a UTF-8 text file") from None
    reader = csv.DictReader(text.splitlines())
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "study" not in header and "t1" not in header and "t2" not in header:
        raise UsageError(
            f"cohort CSV '{path}' has columns {header or 'none'}; it needs a header with 'study' (DICOM folders) "
            "or 't1'/'t2' (NIfTI/MHA files), and optionally 'id'"
        )
    reader.fieldnames = header
    sources: list[StudySource] = []
    seen_ids: dict[str, int] = {}
    seen_sources: dict[str, str] = {}
    for row in reader:
        line = reader.line_num
        values = {name: (row.get(name) or "").strip() for name in CSV_COLUMNS}
        if not any(values.values()):
            continue
        row_id = values["id"]
        if row_id:
            if row_id in seen_ids:
                raise UsageError(
                    f"cohort CSV '{path}': id {row_id!r} appears on lines {seen_ids[row_id]} and {line}; "
                    "ids must be unique"
                )
            seen_ids[row_id] = line
        for source in _row_sources(path.parent, values, line=line, io_config=io_config):
            if source.source_id in seen_sources:
                log.warning(
                    "csv line %d repeats the study of %s; it is processed once", line, seen_sources[source.source_id]
                )
                continue
            seen_sources[source.source_id] = f"csv line {line}"
            sources.append(source)
    return sources


def _row_sources(
    base: Path, values: Mapping[str, str], *, line: int, io_config: IoSettings | None
) -> list[StudySource]:
    label = f"csv line {line}"
    row_id = values["id"]
    identifiers: dict[str, Any] = {"csv_line": line, **({"id": row_id} if row_id else {})}
    files = {role: values[role] for role in ("t1", "t2") if values[role]}
    if values["study"] and files:
        return [_invalid(label, f"{label} gives both a study folder and T1/T2 files; give one of them", row_id, values)]
    if not values["study"] and not files:
        return [_invalid(label, f"{label} names no study folder and no T1/T2 file", row_id, values)]
    if values["study"]:
        folder = _resolve(base, values["study"])
        try:
            if not folder.is_dir():
                raise InputError(f"study folder '{folder}' of {label} does not exist or is not a folder")
            found = _dicom_sources(folder, prefix=label, io_config=io_config)
            if not found:
                raise InputError(f"no DICOM study found in '{folder}' ({label})")
        except ModicError as exc:
            return [_invalid(label, str(exc), row_id, values, private=(str(folder),))]
        return [replace(source, identifiers={**identifiers, **source.identifiers}) for source in found]
    paths = {role: _resolve(base, value) for role, value in files.items()}
    identity = row_id or "|".join(f"{role}={paths[role]}" for role in sorted(paths))
    return [
        StudySource(
            source_id=_hash(identity),
            label=f"{label}: {'+'.join(sorted(paths))} file(s)",
            t1=paths.get("t1"),
            t2=paths.get("t2"),
            identifiers={**identifiers, **{role: str(p) for role, p in paths.items()}},
            private=_longest_first([str(p) for p in paths.values()] + [str(p.parent) for p in paths.values()]),
        )
    ]


def _invalid(
    label: str, message: str, row_id: str, values: Mapping[str, str], *, private: tuple[str, ...] = ()
) -> StudySource:
    identity = row_id or "|".join(f"{k}={values[k]}" for k in ("study", "t1", "t2"))
    return StudySource(
        source_id=_hash(identity),
        label=f"{label}: unusable row",
        error=message,
        identifiers={**({"id": row_id} if row_id else {}), **{k: v for k, v in values.items() if v and k != "id"}},
        private=_longest_first([*private, *(v for k, v in values.items() if v and k != "id")]),
    )


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _hash(text: str) -> str:
    return hashlib.sha256((SOURCE_PREFIX + text).encode("utf-8")).hexdigest()[:16]


def _longest_first(values: list[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v and v not in {".", "/"}}, key=len, reverse=True))
