"""Where studies run: in this process, in a local process pool, in the cross-study (GPU) pipeline, or on Dask.

Every executor calls ``emit(source, outcome)`` in the calling process once per
study, in completion order; the runner turns that into a manifest line and
progress. Executors never write the manifest themselves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from modic.atomic import TEMP_PREFIX
from modic.batch.sources import StudySource
from modic.batch.worker import (
    BatchJob,
    PreparedStudy,
    StudyOutcome,
    describe_error,
    failed_outcome,
    finish_study,
    init_process,
    prepare_study,
    process_study,
    segment_prepared,
    worker_models,
)

if TYPE_CHECKING:
    import torch

    from modic.segmentation.infer import SegmentationModel

log = logging.getLogger("modic.batch")

Emit = Callable[[StudySource, StudyOutcome], None]
WORKER_DIED = "the worker process died while processing this study (killed, or out of memory)"


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, which respects cgroups and taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Torch threads per worker process so that ``workers`` processes do not oversubscribe the cores."""
    return max(1, available_cores() // max(1, workers))


def run_in_process(sources: Sequence[StudySource], job: BatchJob, emit: Emit) -> None:
    """One study after the other in this process (``--workers 1`` on the CPU)."""
    for source in sources:
        emit(source, process_study(source, job))


def run_process_pool(
    sources: Sequence[StudySource], job: BatchJob, emit: Emit, *, workers: int, retries: int
) -> None:
    """Whole studies in ``workers`` processes, each with its own models and a share of the cores.

    When a worker process dies (killed, out of memory) the pool breaks; the
    studies that were in flight are resubmitted to a fresh pool up to
    ``retries`` times, then recorded as failed.
    """
    crashes: dict[str, int] = {}
    pending = list(sources)
    context = multiprocessing.get_context("spawn")
    while pending:
        broken: list[StudySource] = []
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=init_process,
            initargs=(job, threads_per_worker(workers)),
        ) as pool:
            futures = {pool.submit(process_study, source, job): source for source in pending}
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    source = futures[future]
                    try:
                        emit(source, future.result())
                    except BrokenProcessPool:
                        broken.append(source)
        pending = _after_worker_death(broken, crashes, retries=retries, job=job, emit=emit)


def _after_worker_death(
    lost: Sequence[StudySource], crashes: dict[str, int], *, retries: int, job: BatchJob, emit: Emit
) -> list[StudySource]:
    """Studies in flight when a worker process died: those within ``retries`` crashes are returned to run
    again, the others are recorded as failed."""
    again = []
    for source in lost:
        crashes[source.source_id] = crashes.get(source.source_id, 0) + 1
        if crashes[source.source_id] > retries:
            emit(source, failed_outcome(source, WORKER_DIED, job))
        else:
            again.append(source)
    if again:
        log.warning("a worker process died; %d study(ies) in flight are run again", len(again))
    return again


def run_cross_study(
    sources: Sequence[StudySource],
    job: BatchJob,
    emit: Emit,
    *,
    workers: int,
    retries: int,
    prefetch: int | None = None,
) -> None:
    """The GPU pipeline: workers read and pre-process, this process segments many studies per forward pass.

    Up to ``prefetch`` (default ``2 * workers``) studies are read ahead, so the
    network always gets the slices of every study that is ready, batched
    together (:meth:`~modic.segmentation.infer.SegmentationModel.logits_on_grids`,
    mixed precision on CUDA); workers then map the probabilities back, grade
    and write each study. Results equal the per-study path up to
    floating-point rounding. Runs on the CPU too (``--pipeline cross-study``),
    which is how it is tested. When a worker process dies, the studies in
    flight run again in a fresh pool up to ``retries`` times.
    """
    segmenter = worker_models(job).segmenter
    worker_job = replace(job, device="cpu")
    crashes: dict[str, int] = {}
    pending = list(sources)
    scratch = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}scratch-", dir=job.out))
    try:
        while pending:
            lost, pending = _cross_study_pass(
                pending, job=worker_job, segmenter=segmenter, emit=emit, workers=workers,
                prefetch=prefetch or 2 * workers, scratch=scratch,
            )
            pending = _after_worker_death(lost, crashes, retries=retries, job=job, emit=emit) + pending
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _cross_study_pass(
    sources: list[StudySource],
    *,
    job: BatchJob,
    segmenter: SegmentationModel,
    emit: Emit,
    workers: int,
    prefetch: int,
    scratch: Path,
) -> tuple[list[StudySource], list[StudySource]]:
    """Run ``sources`` through one process pool; returns (studies in flight, studies not started) if it breaks."""
    queue = deque(sources)
    preparing: dict[Future, StudySource] = {}
    finishing: dict[Future, StudySource] = {}
    in_flight: dict[str, StudySource] = {}

    def done(source: StudySource, outcome: StudyOutcome) -> None:
        in_flight.pop(source.source_id, None)
        emit(source, outcome)

    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_process,
            initargs=(job, threads_per_worker(workers)),
        ) as pool:

            def read_ahead() -> None:
                while queue and len(preparing) < prefetch:
                    source = queue.popleft()
                    in_flight[source.source_id] = source
                    preparing[pool.submit(prepare_study, source, job, scratch)] = source

            read_ahead()
            while preparing or finishing:
                finished, _ = wait([*preparing, *finishing], return_when=FIRST_COMPLETED)
                ready: list[PreparedStudy] = []
                for future in finished:
                    if future in finishing:
                        done(finishing.pop(future), future.result())
                        continue
                    source = preparing.pop(future)
                    result = future.result()
                    if isinstance(result, PreparedStudy):
                        ready.append(result)
                    else:
                        done(source, result)
                read_ahead()  # keep the workers busy while the network runs
                if ready:
                    for study, on_grid in _segment(segmenter, ready, job, done):
                        finishing[pool.submit(finish_study, study, on_grid, job)] = study.source
    except BrokenProcessPool:
        return list(in_flight.values()), list(queue)
    return [], []


def _segment(
    segmenter: SegmentationModel, ready: list[PreparedStudy], job: BatchJob, done: Emit
) -> list[tuple[PreparedStudy, list[torch.Tensor]]]:
    """The network-grid probabilities of the ready studies; a failure here (e.g. CUDA out of memory) fails them."""
    try:
        on_grid = segment_prepared(segmenter, ready)
    except Exception as exc:  # noqa: BLE001 - fail these studies, keep the batch going
        for study in ready:
            study.images_file.unlink(missing_ok=True)
            done(study.source, failed_outcome(study.source, f"segmentation failed: {describe_error(exc)}", job,
                                              key=study.key))
        return []
    for study in ready:
        study.stacks = []
    return list(zip(ready, on_grid))


def run_dask(
    sources: Sequence[StudySource],
    job: BatchJob,
    emit: Emit,
    *,
    scheduler: str | None,
    workers: int,
    retries: int,
) -> None:
    """Whole studies as Dask tasks on a distributed cluster (``scheduler``), or on a LocalCluster.

    Each study is one ``client.submit``; results are taken with
    ``as_completed``. Errors that are not about the study (bugs, lost mounts)
    are retried ``retries`` times; studies on a worker that dies are
    rescheduled by Dask (up to ``distributed.scheduler.allowed-failures``).
    Workers load the models once and keep them (:func:`worker_models`).
    OUT must be on storage every worker can write.
    """
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        client = Client(cluster)
    token = uuid.uuid4().hex[:8]
    try:
        log.info("dask: %d worker(s) at %s", len(client.scheduler_info().get("workers", {})), client.scheduler.address)
        futures = {
            client.submit(
                process_study,
                source,
                job,
                raise_unexpected=True,
                key=f"modic-study-{source.source_id}-{token}",
                retries=retries,
                pure=False,
            ): source
            for source in sources
        }
        for future in as_completed(futures):
            source = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - retries exhausted or the study killed its workers
                outcome = failed_outcome(source, _dask_error(exc) or describe_error(exc), job)
            emit(source, outcome)
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _dask_error(exc: BaseException) -> str:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return "every Dask worker that ran this study died (killed, or out of memory)"
    return ""
