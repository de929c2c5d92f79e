"""Write every output of one analysis into a folder, atomically.

The folder appears complete or not at all: everything is written into a
temporary sibling that is renamed at the end (:func:`modic.atomic.output_folder`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from modic import atomic
from modic.errors import OutputError, UsageError
from modic.io.formats import write_nifti
from modic.pipeline import StudyAnalysis
from modic.report import dicom_seg, dicom_sr, figures, html
from modic.report.json_report import build_report, dumps
from modic.report.tables import endplate_rows, to_csv

log = logging.getLogger("modic.report.writer")

LABEL_MAPS = {
    "segmentation.nii.gz": "semantic",
    "vertebrae.nii.gz": "vertebra_map",
    "discs.nii.gz": "disc_map",
    "endplates.nii.gz": "endplate_map",
    "reference_marrow.nii.gz": "reference_map",
}


def check_output_folder(path: str | Path, *, overwrite: bool) -> Path:
    """Refuse, before any work, an output that cannot be created or would replace files without ``overwrite``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"output '{path}' exists and is not a folder; choose another -o")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UsageError(f"output folder '{path}' is not empty; choose another -o or add --overwrite")
    ancestor = path.absolute().parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"output folder '{path}' cannot be created: '{ancestor}' is not a folder; choose another -o")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"output folder '{path}' cannot be created: no permission to write in '{ancestor}'")
    return path


def write_outputs(
    analysis: StudyAnalysis,
    out_dir: str | Path,
    *,
    keep_identifiers: bool = False,
    candidacy: Mapping[str, Any] | None = None,
    dicom: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write report.json, levels.csv, label maps, pictures, report.html and (for DICOM input) SEG and SR.

    Returns the report dictionary.

    Raises:
        OutputError: the folder cannot be written (no permission, disk full); nothing is left behind.
    """
    report = build_report(analysis, keep_identifiers=keep_identifiers, candidacy=candidacy)
    try:
        with atomic.output_folder(out_dir, replace=overwrite) as folder:
            write_into(folder, analysis, report, dicom=dicom)
    except OSError as exc:
        raise OutputError(
            f"cannot write the outputs to '{out_dir}': {exc.strerror or type(exc).__name__}"
            + (f" ('{exc.filename}')" if exc.filename else "")
            + "; check the free space and permissions there, or choose another -o"
        ) from None
    return report


def write_into(folder: Path, analysis: StudyAnalysis, report: Mapping[str, Any], *, dicom: bool) -> None:
    """The files of one analysis, into an existing (temporary) folder.

    The DICOM SEG and SR are encoded in a second thread while the pictures are
    drawn: much of the picture work (PNG compression, NumPy, Agg rasterising)
    releases the GIL, and on the 2-core benchmark machine the outputs of a study
    were written in 2.3-2.8 s instead of 3.4 s (docs/benchmarks.md).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modic-dicom") as pool:
        pending = pool.submit(_write_dicom, folder, analysis, report) if dicom else None
        (folder / "report.json").write_text(dumps(report), encoding="utf-8")
        (folder / "levels.csv").write_text(to_csv(endplate_rows(report)), encoding="utf-8")
        geometry = analysis.anatomy.geometry
        for name, attribute in LABEL_MAPS.items():
            labels = getattr(analysis.anatomy, attribute)
            write_nifti(geometry.with_array(labels.astype(np.uint16)), folder / name)
        pictures = figures.write_figures(analysis, report, folder)
        html.write_html(report, pictures, folder / "report.html")
        if pending is not None:
            pending.result()


def _write_dicom(folder: Path, analysis: StudyAnalysis, report: Mapping[str, Any]) -> None:
    """seg.dcm and sr.dcm, for DICOM T1 input (nothing otherwise, said in the log when the T1 cannot be referenced)."""
    problem = dicom_seg.unreferenceable(analysis.images.t1_source_headers)
    if problem:
        log.warning("no seg.dcm/sr.dcm written: %s", problem)
        return
    if analysis.images.t1_source_headers:
        seg = dicom_seg.write_seg(analysis, folder / "seg.dcm")
        dicom_sr.write_sr(analysis, report, folder / "sr.dcm", segmentation=seg)
