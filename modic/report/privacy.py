"""Pseudonymous study keys and removal of identifiers from what modic writes.

By default no patient name, ID, birth date, UID, accession number or input
path reaches report.json, CSVs, HTML, logs or file names: outputs are keyed
by :func:`study_key`, a stable hash. ``--keep-identifiers`` opts in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from modic.io.study import StudyImages

KEY_PREFIX = "modic-study-v1:"
IDENTIFYING_KEYS = re.compile(r"(uid|path|file|root|patient|accession|birth)", re.IGNORECASE)


def study_key(images: StudyImages) -> str:
    """A stable pseudonym of the study: 16 hex digits of SHA-256.

    From the StudyInstanceUID for DICOM input, else from the image voxels and
    geometry, so the same data always get the same key and the key reveals
    nothing about the patient.
    """
    digest = hashlib.sha256(KEY_PREFIX.encode())
    if images.study_uid:
        digest.update(images.study_uid.encode())
    else:
        for volume in (images.t1, images.t2_native if images.t2_native is not None else images.t2):
            if volume is not None:
                digest.update(np.ascontiguousarray(volume.array, dtype=np.float32).tobytes())
                digest.update(np.asarray(volume.affine, dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def input_paths(images: StudyImages) -> list[str]:
    """Paths of the input that must not appear in de-identified outputs.

    For files given as input (NIfTI, MHA, pictures) also their names: file
    names often carry the patient's name, and the name is the series
    description of such a file.
    """
    paths = set()
    for info in images.series.values():
        if info.path:
            path = Path(info.path)
            paths.update((str(path), str(path.parent)))
            if info.series_uid is None:
                paths.add(path.name)
    return sorted((p for p in paths if p not in {"", "."}), key=len, reverse=True)


def scrub(value: Any, *, paths: Iterable[str], keep_identifiers: bool) -> Any:
    """A copy of a JSON-like ``value`` without identifying keys, and input paths (and UIDs) replaced by ``<input>``.

    A path holding a separator or a dot (``/data/x``, ``study/dicom``,
    ``t1.nii.gz``, a UID) is replaced wherever it occurs; a bare word
    (``dicom``, a relative folder given by its name) only where messages
    quote a path (``'dicom'``, ``'dicom/IM1.dcm'``), so that words like
    ``study`` or ``dicom`` elsewhere in the report stay intact.
    """
    if keep_identifiers:
        return value
    patterns = [_path_pattern(p) for p in paths if p not in {"", "."}]
    return _scrub(value, patterns)


def _path_pattern(path: str) -> re.Pattern[str]:
    """Where ``path`` is replaced: anywhere when it is specific enough, else only at the start of a quoted path."""
    if any(mark in path for mark in ("/", "\\", ".")):
        return re.compile(re.escape(path))
    return re.compile(r"(?<=')" + re.escape(path) + r"(?=['/\\])")


def _scrub(value: Any, patterns: list[re.Pattern[str]]) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v, patterns) for k, v in value.items() if not IDENTIFYING_KEYS.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, patterns) for v in value]
    if isinstance(value, str):
        for pattern in patterns:
            value = pattern.sub("<input>", value)
        return value
    return value
