"""Where studies run: in supervised worker processes, in the cross-study (GPU) pipeline, or on Dask.

Every executor calls ``emit(source, outcome)`` in the calling process once per
study, in completion order; the runner turns that into a manifest line and
progress. Executors never write the manifest themselves.

Local studies always run in worker processes (:class:`WorkerPool`), never in
the batch's own process: each task has a time limit, and a worker that
overruns it (stopped, a hung network read, a stuck decoder) or dies (killed,
out of memory) is killed and replaced, its study recorded as failed or run
again, and the rest of the cohort goes on. On Ctrl-C or SIGTERM the batch
kills its workers and stops.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modic.atomic import temp_prefix
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
from modic.errors import ModicError

if TYPE_CHECKING:
    import torch

    from modic.segmentation.infer import SegmentationModel

log = logging.getLogger("modic.batch")

Emit = Callable[[StudySource, StudyOutcome], None]
WORKER_DIED = "the worker process died while processing this study (killed, or out of memory)"
POLL_S = 1.0
"""The batch looks at its workers at least this often (seconds)."""
STUCK_PAUSE_S = 5.0
"""A look that came this much later than asked means the batch itself was stopped (Ctrl-Z, SIGSTOP):
the time limits of the studies in flight are extended by the pause."""
START_FAILURES = 3
"""Worker processes that may die before they are ready (loading the models) before the batch gives up."""
PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (Linux)."""
START_TIME_LIMIT_S = 600.0
"""Seconds a worker may take to start and load the models (at least the study time limit)."""


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, which respects cgroups and taskset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Torch threads per worker process so that ``workers`` processes do not oversubscribe the cores."""
    return max(1, available_cores() // max(1, workers))


def timed_out_message(limit: float) -> str:
    """The failure recorded for a study that overran the time limit."""
    return (
        f"stopped after the study time limit of {limit:g} s: its worker was stuck or stopped (a hung network read, "
        "a stuck decoder?) and was killed; rerun with --retry-failed, with a larger --study-timeout if the study "
        "is only slow"
    )


@dataclass
class Event:
    """What became of a task: ``done`` (with its result), ``died`` (its worker died) or ``timed_out``."""

    tag: Hashable
    kind: str
    result: Any = None


@dataclass
class _Task:
    tag: Hashable
    function: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    ready: bool = False
    task: _Task | None = None
    deadline: float = 0.0
    started: float = field(default_factory=time.monotonic)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when the batch process dies (``kill -9`` included; Linux only).

    Otherwise an orphaned worker would finish its study after the batch was
    killed, unseen by the manifest.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _serve(connection: Connection, job: BatchJob, torch_threads: int, parent: int) -> None:
    """A worker process: load the models, then run one task at a time until told to stop.

    SIGINT is ignored (Ctrl-C reaches the whole process group; the batch
    decides and kills its workers), SIGTERM ends the process, and so does the
    end of the batch process. The worker is born ignoring SIGINT
    (:func:`_ignoring_ctrl_c`), so a Ctrl-C while it is still importing does
    not raise KeyboardInterrupt with a traceback.
    """
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        init_process(job, torch_threads)
    except Exception as exc:  # noqa: BLE001 - reported to the batch, which stops with this reason
        connection.send(("failed", describe_error(exc)))
        return
    connection.send(("ready", None))
    while True:
        message = connection.recv()
        if message is None:
            return
        function, args = message
        try:
            result = ("done", function(*args))
        except Exception as exc:  # noqa: BLE001 - the study functions catch their own; this is a last resort
            result = ("error", describe_error(exc))
        connection.send(result)


@contextlib.contextmanager
def _ignoring_ctrl_c() -> Iterator[None]:
    """Start processes that ignore SIGINT from their first instruction, without losing a Ctrl-C here.

    An ignored signal stays ignored across exec, so the child ignores SIGINT
    before Python has even started. This process blocks SIGINT meanwhile: one
    arriving then waits and reaches the restored handler when unblocked. Off
    the main thread (where handlers cannot be set) processes start as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class WorkerPool:
    """``workers`` processes that run one task each at a time, with a time limit per task.

    A worker that dies or overruns ``time_limit`` seconds is killed and
    replaced; its task comes back as a ``died`` or ``timed_out`` :class:`Event`.
    Use as a context manager: leaving it (also on Ctrl-C or SIGTERM) kills
    every worker.
    """

    def __init__(self, job: BatchJob, *, workers: int, time_limit: float | None) -> None:
        self.job = job
        self.size = workers
        self.time_limit = time_limit
        self.start_limit = max(START_TIME_LIMIT_S, time_limit or 0.0)
        self.threads = threads_per_worker(workers)
        self.context = multiprocessing.get_context("spawn")
        self.queue: deque[_Task] = deque()
        self.workers: list[_Worker] = []
        self.start_failures = 0

    def __enter__(self) -> WorkerPool:
        for _ in range(self.size):
            self._start_worker()
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers:
            if worker.process.is_alive() and exc[0] is None and worker.task is None:
                with contextlib.suppress(OSError):
                    worker.connection.send(None)
        for worker in self.workers:
            worker.process.join(timeout=5 if exc[0] is None and worker.ready else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self.workers = []

    def submit(self, tag: Hashable, function: Callable[..., Any], *args: Any) -> None:
        """Queue ``function(*args)`` (a picklable module-level function) under ``tag``."""
        self.queue.append(_Task(tag, function, args))

    @property
    def busy(self) -> bool:
        """Whether tasks are queued or running."""
        return bool(self.queue) or any(w.task is not None for w in self.workers)

    def wait(self) -> list[Event]:
        """Block until at least one task has ended; its events (empty when nothing is queued or running)."""
        while True:
            self._dispatch()
            if not self.busy:
                return []
            timeout = min(POLL_S, self._next_deadline())
            before = time.monotonic()
            handles: list[Any] = [w.connection for w in self.workers] + [w.process.sentinel for w in self.workers]
            ready = set(wait(handles, timeout=timeout))
            self._allow_for_pause(time.monotonic() - before - timeout)
            events: list[Event] = []
            for worker in list(self.workers):
                if worker.connection in ready:
                    events.extend(self._receive(worker))
                elif worker.process.sentinel in ready:
                    events.extend(self._lost(worker, "died"))
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.task is not None and now > worker.deadline:
                    events.extend(self._lost(worker, "timed_out"))
                elif not worker.ready and now > worker.started + self.start_limit:
                    self._lost(worker, "died")
            if events:
                return events

    def _start_worker(self) -> None:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_serve, args=(child, self.job, self.threads, os.getpid()), daemon=True
        )
        with _ignoring_ctrl_c():
            process.start()
        child.close()
        self.workers.append(_Worker(process=process, connection=parent))

    def _dispatch(self) -> None:
        for worker in self.workers:
            if worker.ready and worker.task is None and self.queue:
                task = self.queue.popleft()
                try:
                    worker.connection.send((task.function, task.args))
                except OSError:  # the worker just died: its sentinel says so in wait(); the task waits
                    self.queue.appendleft(task)
                    continue
                worker.task = task
                worker.deadline = time.monotonic() + self.time_limit if self.time_limit else float("inf")

    def _next_deadline(self) -> float:
        """Seconds until the first time limit of a running task or a starting worker ends."""
        deadlines = [w.deadline for w in self.workers if w.task is not None]
        deadlines += [w.started + self.start_limit for w in self.workers if not w.ready]
        return max(0.0, min(deadlines, default=float("inf")) - time.monotonic()) + 0.05

    def _allow_for_pause(self, overshoot: float) -> None:
        """Extend the time limits by a pause of the batch itself (Ctrl-Z, SIGSTOP): its workers did not overrun."""
        if overshoot > STUCK_PAUSE_S:
            for worker in self.workers:
                worker.deadline += overshoot
                worker.started += overshoot

    def _receive(self, worker: _Worker) -> list[Event]:
        try:
            kind, value = worker.connection.recv()
        except (EOFError, OSError):
            return self._lost(worker, "died")
        if kind == "ready":
            worker.ready = True
            return []
        if kind == "failed":
            raise ModicError(f"a batch worker could not start: {value}")
        task, worker.task = worker.task, None
        if task is None:
            return []
        return [Event(task.tag, "done" if kind == "done" else "error", value)]

    def _lost(self, worker: _Worker, kind: str) -> list[Event]:
        """Kill ``worker``, start another, and return the event of its task."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.connection.close()
        self.workers.remove(worker)
        if not worker.ready:
            self.start_failures += 1
            if self.start_failures > START_FAILURES:
                raise ModicError(
                    f"{self.start_failures} batch worker processes died or hung while starting and loading the models "
                    "(out of memory? a hung file system?); try fewer --workers, or check the machine"
                )
        self._start_worker()
        return [Event(worker.task.tag, kind)] if worker.task is not None else []


def run_local(
    sources: Sequence[StudySource], job: BatchJob, emit: Emit, *, workers: int, retries: int, time_limit: float | None
) -> None:
    """Whole studies in ``workers`` supervised processes, each with its own models and a share of the cores.

    A study whose worker died runs again up to ``retries`` times, then is
    recorded as failed; a study that overran ``time_limit`` is recorded as
    failed at once (it would most likely hang again).
    """
    crashes: dict[str, int] = {}
    by_id = {source.source_id: source for source in sources}
    with WorkerPool(job, workers=workers, time_limit=time_limit) as pool:
        for source in sources:
            pool.submit(source.source_id, process_study, source, job)
        while pool.busy:
            for event in pool.wait():
                source = by_id[str(event.tag)]
                if _settle(event, source, crashes, retries=retries, job=job, emit=emit, time_limit=time_limit):
                    pool.submit(source.source_id, process_study, source, job)


def _settle(
    event: Event,
    source: StudySource,
    crashes: dict[str, int],
    *,
    retries: int,
    job: BatchJob,
    emit: Emit,
    time_limit: float | None,
) -> bool:
    """Record the outcome a worker event gives its study; True when a study whose worker died runs again."""
    if event.kind == "done":
        emit(source, event.result)
    elif event.kind == "timed_out":
        emit(source, failed_outcome(source, timed_out_message(float(time_limit or 0)), job))
    elif event.kind == "error":
        emit(source, failed_outcome(source, str(event.result), job))
    else:
        return _again(source, crashes, retries=retries, job=job, emit=emit)
    return False


def _again(source: StudySource, crashes: dict[str, int], *, retries: int, job: BatchJob, emit: Emit) -> bool:
    """Whether a study whose worker died runs again (within ``retries`` crashes); otherwise it is recorded as failed."""
    crashes[source.source_id] = crashes.get(source.source_id, 0) + 1
    if crashes[source.source_id] > retries:
        emit(source, failed_outcome(source, WORKER_DIED, job))
        return False
    log.warning("a worker process died; its study is run again")
    return True


def run_cross_study(
    sources: Sequence[StudySource],
    job: BatchJob,
    emit: Emit,
    *,
    workers: int,
    retries: int,
    time_limit: float | None,
    prefetch: int | None = None,
) -> None:
    """The GPU pipeline: workers read and pre-process, this process segments many studies per forward pass.

    Up to ``prefetch`` (default ``2 * workers``) studies are read ahead, so the
    network always gets the slices of every study that is ready, batched
    together (:meth:`~modic.segmentation.infer.SegmentationModel.probabilities_on_grids`,
    mixed precision on CUDA); workers then map the probabilities back, grade
    and write each study. Results equal the per-study path up to
    floating-point rounding. Runs on the CPU too (``--pipeline cross-study``),
    which is how it is tested. A study whose worker died is read again up to
    ``retries`` times; each worker task (reading, finishing) has ``time_limit``.
    """
    segmenter = worker_models(job).segmenter
    worker_job = replace(job, device="cpu")
    crashes: dict[str, int] = {}
    queue = deque(sources)
    by_id = {source.source_id: source for source in sources}
    preparing = 0
    scratch = Path(tempfile.mkdtemp(prefix=temp_prefix("scratch-"), dir=job.out))
    limit = prefetch or 2 * workers
    try:
        with WorkerPool(worker_job, workers=workers, time_limit=time_limit) as pool:
            while queue or pool.busy:
                while queue and preparing < limit:
                    source = queue.popleft()
                    pool.submit(("prepare", source.source_id), prepare_study, source, worker_job, scratch)
                    preparing += 1
                ready: list[PreparedStudy] = []
                for event in pool.wait():
                    stage, source_id = event.tag  # type: ignore[misc]
                    source = by_id[source_id]
                    if stage == "prepare":
                        preparing -= 1
                    if event.kind == "done" and isinstance(event.result, PreparedStudy):
                        ready.append(event.result)
                    elif _settle(event, source, crashes, retries=retries, job=job, emit=emit, time_limit=time_limit):
                        queue.appendleft(source)
                for study, on_grid in _segment(segmenter, ready, job, emit):
                    pool.submit(("finish", study.source.source_id), finish_study, study, on_grid, worker_job)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
