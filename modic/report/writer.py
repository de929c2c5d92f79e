"""Write every output of one analysis into a folder, atomically.

The folder appears complete or not at all: everything is written into a
temporary sibling that is renamed at the end (:func:`modic.atomic.output_folder`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modic import atomic
from modic.errors import OutputError, OutputFolderError
from modic.io.formats import write_nifti
from modic.results import StudyAnalysis
from modic.report import dicom_seg, dicom_sr, figures, html
from modic.report.json_report import build_report, dumps
from modic.report.tables import endplate_rows, to_csv


LABEL_MAPS = {
    "segmentation.nii.gz": "semantic",
    "vertebrae.nii.gz": "vertebra_map",
    "discs.nii.gz": "disc_map",
    "endplates.nii.gz": "endplate_map",
    "reference_marrow.nii.gz": "reference_map",
}


def check_output_folder(path: str | Path, *, overwrite: bool, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse, before any work, an output that cannot be written or whose replacement would lose files.

    Refused: an output that is, holds or lies inside one of ``inputs`` or the
    current folder; a symbolic link or mount point (neither can be replaced by
    a rename); a non-empty folder without ``overwrite``, or with it when the
    folder holds files modic did not write; a place where a temporary folder
    cannot be created and renamed. Also removes the temporaries that dead runs
    left next to the output (:func:`modic.atomic.remove_stale_temporaries`).

    Returns the output as an absolute path, to be used from then on.

    Raises:
        OutputFolderError: the folder is refused (its ``remedy`` says what to change).
    """
    given = path
    path = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    here = Path.cwd().resolve()
    if real == here or real in here.parents:
        raise OutputFolderError(
            f"output folder '{given}' is the current folder or one above it, which modic would replace as a whole",
            remedy="new_name", folder=str(given),
        )
    for item in inputs:
        if item is not None:
            _refuse_input_overlap(given, real, Path(item))
    if path.is_symlink():
        raise OutputFolderError(
            f"output '{given}' is a symbolic link (to '{os.readlink(path)}'), which modic cannot replace by a rename",
            remedy="link_target", folder=str(given),
        )
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"output '{given}' exists and is not a folder", remedy="other", folder=str(given))
    if path.is_dir() and os.path.ismount(path):
        raise OutputFolderError(
            f"output folder '{given}' is a mount point, which modic cannot replace by a rename",
            remedy="inside", folder=str(given),
        )
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputFolderError(f"output folder '{given}' is not empty", remedy="overwrite", folder=str(given))
        atomic.refuse_foreign(path)
    ancestor = path.parent
    while not ancestor.exists() and not ancestor.is_symlink():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputFolderError(
            f"output folder '{given}' cannot be created: '{ancestor}' is not a folder", remedy="other", folder=str(given)
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputFolderError(
            f"output folder '{given}' cannot be created: '{ancestor}' is not writable (read-only or no permission)",
            remedy="other", folder=str(given),
        )
    _try_rename(ancestor, given=given)
    atomic.remove_stale_temporaries(path.parent)
    return path


def _refuse_input_overlap(given: str | Path, real: Path, item: Path) -> None:
    """OutputFolderError when the output is, holds or lies inside the input ``item``."""
    if not item.exists():
        return
    source = item.resolve()
    if real == source or real in source.parents or (source.is_dir() and source in real.parents):
        relation = "is" if real == source else "holds" if real in source.parents else "lies inside"
        raise OutputFolderError(
            f"output folder '{given}' {relation} the input '{item}'", remedy="outside_input", folder=str(given)
        )


def _try_rename(folder: Path, *, given: str | Path) -> None:
    """Create, rename and remove a temporary folder in ``folder``: the final step of writing, tried before the work."""
    probe = None
    try:
        probe = Path(tempfile.mkdtemp(prefix=atomic.temp_prefix("probe-"), dir=folder))
        renamed = probe.with_name(probe.name + "-renamed")
        os.rename(probe, renamed)
        probe = renamed
    except OSError as exc:
        raise OutputError(
            f"cannot write the output folder '{given}': creating and renaming a folder in '{folder}' failed "
            f"({exc.strerror or type(exc).__name__}); check that the file system there is writable, "
            "or choose another output folder"
        ) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                probe.rmdir()


def write_report(
    analysis: StudyAnalysis,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    keep_identifiers: bool = False,
    dicom: bool = True,
    candidacy: Mapping[str, Any] | None = None,
    inputs: Iterable[str | Path | None] = (),
) -> dict[str, Any]:
    """Everything ``modic analyze`` writes, into ``out_dir``: the folder checked, then written atomically.

    The folder is refused as :func:`check_output_folder` says (also when it
    is, holds or lies inside one of the analysis' input files or folders, or
    one of ``inputs``), then :func:`write_outputs` writes it. Returns the
    report dictionary. This is what :meth:`modic.api.Analysis.write`
    and ``modic analyze`` call.

    Raises:
        OutputFolderError: the folder is refused; nothing is written.
        OutputError: the folder cannot be written (no permission, disk full); nothing is left behind.
    """
    own = [info.path for info in analysis.images.series.values() if info.path]
    folder = check_output_folder(out_dir, overwrite=overwrite, inputs=[*own, *inputs])
    return write_outputs(
        analysis, folder, keep_identifiers=keep_identifiers, candidacy=candidacy, dicom=dicom, overwrite=overwrite
    )


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
            + "; check the free space and permissions there, or choose another output folder"
        ) from None
    return report


def write_into(folder: Path, analysis: StudyAnalysis, report: Mapping[str, Any], *, dicom: bool) -> None:
    """The files of one analysis, into an existing (temporary) folder.

    The DICOM SEG and SR are encoded in a second thread while the pictures are
    drawn: much of the picture work (PNG compression, NumPy, Agg rasterising)
    releases the GIL, and on the 2-core benchmark machine the outputs of a study
    were written in 2.3-2.8 s instead of 3.4 s (docs/benchmarks.md). The thread
    is always waited for, also when Ctrl-C or SIGTERM interrupts this one (even
    while it starts), so that it never writes into a folder already removed.
    """
    started = threading.Event()
    errors: list[BaseException] = []
    thread = threading.Thread(
        target=_dicom_thread, args=(started, errors, folder, analysis, report), name="modic-dicom", daemon=True
    )
    launched = False
    try:
        if dicom:
            launched = True
            thread.start()
        (folder / "report.json").write_text(dumps(report), encoding="utf-8")
        (folder / "levels.csv").write_text(to_csv(endplate_rows(report)), encoding="utf-8")
        geometry = analysis.anatomy.geometry
        for name, attribute in LABEL_MAPS.items():
            labels = getattr(analysis.anatomy, attribute)
            write_nifti(geometry.with_array(labels.astype(np.uint16)), folder / name)
        pictures = figures.write_figures(analysis, report, folder)
        html.write_html(report, pictures, folder / "report.html")
    finally:
        if launched and started.wait(timeout=10):
            thread.join()
    if errors:
        raise errors[0]


def _dicom_thread(
    started: threading.Event, errors: list[BaseException], folder: Path, analysis: StudyAnalysis,
    report: Mapping[str, Any],
) -> None:
    started.set()
    try:
        _write_dicom(folder, analysis, report)
    except BaseException as exc:  # noqa: BLE001 - handed to the writing thread, which raises it
        errors.append(exc)


def _write_dicom(folder: Path, analysis: StudyAnalysis, report: Mapping[str, Any]) -> None:
    """seg.dcm and sr.dcm, for DICOM T1 input (nothing otherwise)."""
    if analysis.images.t1_source_headers:
        seg = dicom_seg.write_seg(analysis, folder / "seg.dcm")
        dicom_sr.write_sr(analysis, report, folder / "sr.dcm", segmentation=seg)
