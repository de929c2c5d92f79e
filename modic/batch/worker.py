"""What a batch worker does with one study, stage by stage.

:func:`process_study` runs a whole study (read, pre-process, segment,
levels, classify, report) and never raises for a bad study: the outcome says
``failed`` and why. It is what the process pool and Dask workers run. The
cross-study (GPU) pipeline splits it: :func:`prepare_study` (read and
pre-process, in a worker), the segmentation network on many studies at once
(in the main process, :func:`segment_prepared`), then :func:`finish_study`
(levels, classification, report, in a worker).

Models are loaded once per process and reused (:func:`worker_models`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pickle
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modic.batch.sources import StudySource
from modic.errors import InputError, ModicError
from modic.report.privacy import scrub
from modic.settings import AnalysisSettings, to_dict

if TYPE_CHECKING:
    import numpy as np
    import torch

    from modic.io.study import StudyImages
    from modic.pipeline import Models
    from modic.results import StudyAnalysis
    from modic.preprocessing.sagittal import NetworkGrid
    from modic.segmentation.infer import SegmentationModel

log = logging.getLogger("modic.batch")

STAGES = ("read_s", "preprocess_s", "segment_s", "levels_s", "classify_s", "report_s")
"""Per-stage timings of every study outcome (plus ``total_s``)."""


@dataclass(frozen=True)
class BatchJob:
    """What every worker needs to analyse a study the way ``modic analyze`` does (picklable)."""

    out: Path
    config: AnalysisSettings
    bundle: str | None = None
    device: str = "cpu"
    batch_size: int | None = None
    keep_identifiers: bool = False
    dicom: bool = True

    @property
    def models_key(self) -> str:
        """Identifies the models this job needs, to reuse them across studies in one process."""
        text = json.dumps([to_dict(self.config.segmentation), to_dict(self.config.classification), self.bundle,
                           self.device, self.batch_size], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StudyOutcome:
    """What happened to one study: ``ok``, ``failed`` (with the reason) or ``skipped`` (already finished)."""

    source_id: str
    status: str
    key: str | None = None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: str = ""


@dataclass
class PreparedStudy:
    """A study read and pre-processed by a worker, waiting for the segmentation network.

    The images wait in ``images_file`` (written by the worker, read back by
    :func:`finish_study`) so that only the network input travels through the
    main process.
    """

    source: StudySource
    key: str
    images_file: Path
    stacks: list[torch.Tensor]
    grids: list[NetworkGrid]
    timings: dict[str, float]
    started: float


_MODELS: dict[str, Models] = {}
_MODELS_LOCK = threading.Lock()


def worker_models(job: BatchJob) -> Models:
    """The job's models, loaded on first use in this process and then reused."""
    from modic.pipeline import Models

    with _MODELS_LOCK:
        models = _MODELS.get(job.models_key)
        if models is None:
            models = Models.load(job.config, device=job.device, bundle=job.bundle)
            if job.batch_size:
                models.segmenter.batch_size = job.batch_size
            _MODELS[job.models_key] = models
        return models


def init_process(job: BatchJob, torch_threads: int) -> None:
    """Process-pool initializer: share the cores between workers and load the models once."""
    import torch

    torch.set_num_threads(max(1, torch_threads))
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    worker_models(job)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished study output (folders appear complete or not at all)."""
    return (folder / "report.json").is_file()


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started


def process_study(source: StudySource, job: BatchJob, *, raise_unexpected: bool = False) -> StudyOutcome:
    """Analyse one study and write ``OUT/<key>/``; failures become a ``failed`` outcome.

    With ``raise_unexpected`` an error that is not a :class:`~modic.errors.ModicError`
    (a bug, a full disk, a lost network mount) propagates, so that Dask can
    retry the study on another worker.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    key = source.key
    try:
        with _quiet_study_logs():
            images = _read(source, timer, job=job)
            key = _key(images)
            if is_complete(job.out / key):
                return _outcome(source, "skipped", key, timings, started)
            models = worker_models(job)
            probabilities = _segment_one(images, models.segmenter, timer)
            analysis = _analyze(images, models, job, probabilities, timings)
            with timer("report_s"):
                status = _write(analysis, key, job)
        return _outcome(source, status, key, timings, started)
    except Exception as exc:  # noqa: BLE001 - one study's failure must never stop the batch
        if raise_unexpected and not isinstance(exc, (ModicError, MemoryError)):
            raise
        return _failed(source, exc, job, key=key, timings=timings, started=started)


def prepare_study(source: StudySource, job: BatchJob, scratch: Path) -> PreparedStudy | StudyOutcome:
    """Read and pre-process one study for :func:`segment_prepared` (worker side of the cross-study pipeline)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    timer = _Timer(timings)
    key = source.key
    try:
        with _quiet_study_logs():
            images = _read(source, timer, job=job)
            key = _key(images)
            if is_complete(job.out / key):
                return _outcome(source, "skipped", key, timings, started)
            from modic.pipeline import segmentation_inputs

            segmenter = worker_models(job).segmenter
            with timer("preprocess_s"):
                inputs = [segmenter.network_input(volume) for volume in segmentation_inputs(images)]
                images_file = scratch / f"{source.source_id}.pickle"
                images_file.write_bytes(pickle.dumps(images, protocol=pickle.HIGHEST_PROTOCOL))
        return PreparedStudy(
            source=source,
            key=key,
            images_file=images_file,
            stacks=[stack for stack, _ in inputs],
            grids=[_without_stack(grid) for _, grid in inputs],
            timings=timings,
            started=started,
        )
    except Exception as exc:  # noqa: BLE001 - one study's failure must never stop the batch
        return _failed(source, exc, job, key=key, timings=timings, started=started)


def segment_prepared(segmenter: SegmentationModel, prepared: Sequence[PreparedStudy]) -> list[list[torch.Tensor]]:
    """Network-grid probabilities of every stack of several prepared studies, in shared forward passes.

    Each study's ``segment_s`` gets its share of the time, in proportion to its slices.
    """
    stacks = [stack for study in prepared for stack in study.stacks]
    grids = [grid for study in prepared for grid in study.grids]
    started = time.perf_counter()
    results = segmenter.probabilities_on_grids(stacks, grids)
    elapsed = time.perf_counter() - started
    total = sum(int(stack.shape[0]) for stack in stacks) or 1
    grouped: list[list[torch.Tensor]] = []
    position = 0
    for study in prepared:
        count = len(study.stacks)
        grouped.append(results[position : position + count])
        position += count
        share = sum(int(stack.shape[0]) for stack in study.stacks) / total
        study.timings["segment_s"] = study.timings.get("segment_s", 0.0) + elapsed * share
    return grouped


def finish_study(prepared: PreparedStudy, on_grid: Sequence[torch.Tensor], job: BatchJob) -> StudyOutcome:
    """Map probabilities back, grade and write one prepared study (worker side of the cross-study pipeline)."""
    source, timings, started = prepared.source, prepared.timings, prepared.started
    timer = _Timer(timings)
    try:
        with _quiet_study_logs():
            images = pickle.loads(prepared.images_file.read_bytes())
            models = worker_models(job)
            with timer("segment_s"):
                probabilities = [models.segmenter.to_volume_grid(p, grid) for p, grid in zip(on_grid, prepared.grids)]
            analysis = _analyze(images, models, job, probabilities, timings)
            with timer("report_s"):
                status = _write(analysis, prepared.key, job)
        return _outcome(source, status, prepared.key, timings, started)
    except Exception as exc:  # noqa: BLE001 - one study's failure must never stop the batch
        return _failed(source, exc, job, key=prepared.key, timings=timings, started=started)
    finally:
        with contextlib.suppress(OSError):
            prepared.images_file.unlink()


def failed_outcome(source: StudySource, message: str, job: BatchJob, *, key: str | None = None) -> StudyOutcome:
    """A ``failed`` outcome for an error that happened outside the study's own processing."""
    text = scrub(message, paths=source.private, keep_identifiers=job.keep_identifiers)
    return StudyOutcome(
        source_id=source.source_id, status="failed", key=key or source.key, error=text, worker=worker_name()
    )


def _read(source: StudySource, timer: _Timer, *, job: BatchJob) -> StudyImages:
    from modic.io.study import load_study, load_study_index

    if source.error is not None:
        raise InputError(source.error)
    with timer("read_s"):
        settings = job.config
        inputs = {"config": settings.io, "selection": settings.series_selection, "checks": settings.input_checks}
        if source.index is not None:
            return load_study_index(source.index, **inputs)
        return load_study(t1=source.t1, t2=source.t2, **inputs)


def _key(images: StudyImages) -> str:
    from modic.report.privacy import study_key

    return study_key(images)


def _segment_one(images: StudyImages, segmenter: SegmentationModel, timer: _Timer) -> list[np.ndarray]:
    """The probabilities of each segmented volume, exactly as ``modic analyze`` computes them."""
    from modic.pipeline import segmentation_inputs

    with timer("preprocess_s"):
        inputs = [segmenter.network_input(volume) for volume in segmentation_inputs(images)]
    with timer("segment_s"):
        return [segmenter.to_volume_grid(segmenter.probabilities_on_grid(stack, grid), grid) for stack, grid in inputs]


def _analyze(
    images: StudyImages, models: Models, job: BatchJob, probabilities: Sequence[np.ndarray], timings: dict[str, float]
) -> StudyAnalysis:
    from modic.pipeline import analyze_images

    analysis = analyze_images(images, models=models, config=job.config, probabilities=probabilities)
    for stage, seconds in analysis.timings.items():
        timings[stage] = timings.get(stage, 0.0) + seconds
    return analysis


def _write(analysis: StudyAnalysis, key: str, job: BatchJob) -> str:
    """Write the study's folder atomically; ``skipped`` when another worker finished it meanwhile."""
    from modic.report.writer import write_outputs

    target = job.out / key
    if target.exists() and not is_complete(target):
        raise InputError(
            f"output folder '{key}' exists but holds no report.json (not written by modic?); remove it and rerun"
        )
    try:
        write_outputs(analysis, target, keep_identifiers=job.keep_identifiers, dicom=job.dicom)
    except (OSError, ModicError):  # the rename fails when another worker renamed its copy first
        if is_complete(target):
            return "skipped"
        raise
    return "ok"


def _outcome(
    source: StudySource, status: str, key: str | None, timings: dict[str, float], started: float
) -> StudyOutcome:
    totals = {stage: round(timings.get(stage, 0.0), 4) for stage in STAGES}
    totals["total_s"] = round(time.perf_counter() - started, 4)
    return StudyOutcome(source_id=source.source_id, status=status, key=key, timings=totals, worker=worker_name())


def _failed(
    source: StudySource,
    exc: BaseException,
    job: BatchJob,
    *,
    key: str | None,
    timings: dict[str, float],
    started: float,
) -> StudyOutcome:
    outcome = _outcome(source, "failed", key, timings, started)
    outcome.error = scrub(describe_error(exc), paths=source.private, keep_identifiers=job.keep_identifiers)
    return outcome


BATCH_ADVICE = (
    (re.compile(r"pass --t1-uid/--t2-uid to choose (the )?series explicitly"),
     "list its T1/T2 as NIfTI/MHA files in a cohort CSV (columns t1, t2), or analyse it alone with 'modic analyze', "
     "which can choose series by UID"),
    (re.compile(r"give the DICOM study folder as the study path \(choose the series with --t[12]-uid\) "
                r"or a NIfTI/MHA file as --(t[12])"),
     r"give the DICOM folder in the study column of the cohort CSV, or a NIfTI/MHA file in its \1 column"),
    (re.compile(r"\(--t1/--t2\)"), "(columns t1, t2 of a cohort CSV)"),
    (re.compile(r" ?\(?choose the series with --t[12]-uid\)?"), ""),
    (re.compile(r"(?<![\w-])--(t[12])(?![\w-])"), r"\1"),
)
"""Advice of ``modic analyze`` messages rewritten to what ``modic batch`` accepts."""


def describe_error(exc: BaseException) -> str:
    """One line: the message of a :class:`ModicError` (its advice in batch terms), else the type and message."""
    detail = " ".join(str(exc).split())
    if isinstance(exc, ModicError):
        for pattern, advice in BATCH_ADVICE:
            detail = pattern.sub(advice, detail)
        return detail or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory while processing this study"
    return f"internal error: {type(exc).__name__}: {detail}" if detail else f"internal error: {type(exc).__name__}"


def _without_stack(grid: NetworkGrid) -> NetworkGrid:
    """The grid without its image (mapping probabilities back needs only the geometry)."""
    import torch

    return dataclasses.replace(grid, stack=torch.empty(0))


@contextlib.contextmanager
def _quiet_study_logs() -> Iterator[None]:
    """Per-study input warnings go to each report.json, not to the batch's console."""
    logger = logging.getLogger("modic.io")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)
