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
from typing import Any

import numpy as np

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
    """Paths of the input that must not appear in de-identified outputs."""
    paths = set()
    for info in images.series.values():
        if info.path:
            paths.add(str(info.path))
            paths.add(str(Path(info.path).parent))
    return sorted((p for p in paths if p not in {"", "."}), key=len, reverse=True)


def scrub(value: Any, *, paths: Iterable[str], keep_identifiers: bool) -> Any:
    """A copy of a JSON-like ``value`` without identifying keys, and input paths replaced by ``<input>``."""
    if keep_identifiers:
        return value
    paths = list(paths)
    if isinstance(value, Mapping):
        return {
            k: scrub(v, paths=paths, keep_identifiers=False)
            for k, v in value.items()
            if not IDENTIFYING_KEYS.search(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v, paths=paths, keep_identifiers=False) for v in value]
    if isinstance(value, str):
        for path in paths:
            value = value.replace(path, "<input>")
        return value
    return value
