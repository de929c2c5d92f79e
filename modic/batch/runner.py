"""Run a whole cohort: discover, skip what is finished, process the rest, record every attempt, summarise.

Resumability rests on three things: each study's folder is written to a
temporary sibling and renamed when complete (:func:`modic.atomic.output_folder`);
each attempt is one durable manifest line; and ``summary.csv`` is rebuilt from
the finished folders and the manifest at the end of every run. A run killed
at any moment therefore loses nothing finished, and the next run removes the
killed run's temporaries and carries on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from modic.atomic import remove_stale_temporaries
from modic.batch.executors import Emit, run_cross_study, run_dask, run_local
from modic.batch.manifest import MANIFEST_NAME, ManifestWriter, attempt_counts, last_attempts, read_manifest
from modic.batch.sources import StudySource, discover
from modic.batch.summary import final_table, finished_reports, prevalence, summary_rows, write_summary
from modic.batch.worker import BatchJob, StudyOutcome, is_complete, process_study, worker_name
from modic.classification.factory import with_method
from modic.errors import InputError, OutputError, OutputFolderError, UsageError
from modic.progress import duration
from modic.runtime import resolve_device
from modic.settings import BatchSettings, load_settings

log = logging.getLogger("modic.batch")

EXECUTORS = ("local", "dask")
PIPELINES = ("auto", "per-study", "cross-study")
LOCK_NAME = ".modic-batch.lock"


@dataclass(frozen=True)
class BatchOptions:
    """What ``modic batch`` was asked to do (see ``docs/batch.md``).

    Attributes:
        root: a folder of DICOM studies (any layout) or a cohort CSV.
        out: output folder: ``OUT/<study key>/``, ``summary.csv``, ``manifest.jsonl``.
        workers: worker processes (local) or LocalCluster workers (Dask without scheduler).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        executor: ``local`` (this machine) or ``dask``.
        scheduler: address of a running Dask scheduler (``tcp://HOST:PORT``).
        pipeline: ``per-study`` (each worker runs whole studies), ``cross-study``
            (workers read and pre-process, one process segments many studies per
            forward pass) or ``auto`` (cross-study on a GPU, else per-study).
        retry_failed: run only the studies whose last attempt failed.
        keep_identifiers: keep identifiers in report.json and the manifest.
        dicom: write DICOM SEG and SR for DICOM input.
        config: YAML of the settings to change, merged onto the shipped ones (``--config``).
        method: grading method ``rules``, ``learned`` or ``patch`` in place of the settings'
            ``classification.method`` (default: the settings').
        model: segmentation bundle for every volume (default: the config's, with its thin-slice bundle).
        batch_size: slices per forward pass (default: ``segmentation.batch_size`` of the settings).
        retries: extra tries of a study whose worker died or hit an unexpected error.
        study_timeout: seconds a worker may spend on one study before it is killed and the study
            recorded as failed (default: ``batch.study_timeout_s`` of the settings); local executor only.
        progress_bar: show a tqdm bar (default: when stderr is a terminal); else log lines.
    """

    root: Path
    out: Path
    workers: int = 1
    device: str = "auto"
    executor: str = "local"
    scheduler: str | None = None
    pipeline: str = "auto"
    retry_failed: bool = False
    keep_identifiers: bool = False
    dicom: bool = True
    config: Path | None = None
    method: str | None = None
    model: str | None = None
    batch_size: int | None = None
    retries: int = 2
    study_timeout: float | None = None
    progress_bar: bool | None = None


@dataclass
class BatchResult:
    """What a batch run did."""

    counts: dict[str, int]
    failed: list[str]
    summary: Path
    manifest: Path
    table: str
    pipeline: str
    device: str
    seconds: float
    not_attempted: int = 0
    removed_temporaries: int = 0
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every study of the run succeeded (or was already finished), 1 when any failed."""
        return 1 if self.counts.get("failed", 0) else 0


def run_batch(options: BatchOptions) -> BatchResult:
    """Process every study of ``options.root`` into ``options.out``; see :class:`BatchOptions`."""
    _validate(options)
    started = time.perf_counter()
    out = options.out.resolve()
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"output '{options.out}' exists and is not a folder", remedy="other", folder=str(options.out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / LOCK_NAME, "a+")  # noqa: SIM115 - held for the whole run by _exclusive
    except OSError as exc:
        raise OutputError(
            f"cannot write into the output folder '{options.out}': {exc.strerror or type(exc).__name__}; "
            "check the permissions and free space there, or choose another output folder"
        ) from None
    with _exclusive(lock, out=out):
        removed = remove_stale_temporaries(out, every_owner=True)
        if removed:
            log.info("removed %d unfinished temporary output(s) left by an interrupted run", removed)
        config = with_method(load_settings(options.config), options.method)
        sources = discover(options.root, io_config=config.io)
        if not sources:
            raise InputError(
                f"no DICOM study found under '{options.root}'; give the folder holding the cohort's studies"
            )
        manifest_path = out / MANIFEST_NAME
        history = read_manifest(manifest_path)
        finished, to_run, not_attempted = _plan(sources, out, history, retry_failed=options.retry_failed)
        log.info(
            "%d study(ies) found: %d already finished, %d to process%s",
            len(sources),
            len(finished),
            len(to_run),
            f", {not_attempted} left out (their last attempt did not fail)" if not_attempted else "",
        )
        device = resolve_device(options.device) if options.executor == "local" else options.device
        pipeline = _pipeline(options, device)
        job = BatchJob(
            out=out,
            config=config,
            bundle=_bundle_argument(options.model),
            device=device,
            batch_size=options.batch_size,
            keep_identifiers=options.keep_identifiers,
            dicom=options.dicom,
        )
        recorder = _Recorder(history, run=_run_id(), device=device, pipeline=pipeline, options=options)
        try:
            progress_bar = _Progress(len(to_run), bar=options.progress_bar)
            with ManifestWriter(manifest_path) as manifest, progress_bar as progress:
                for source, key in finished:
                    manifest.append(recorder.record(source, StudyOutcome(source.source_id, "skipped", key=key,
                                                                         worker=worker_name())))

                def emit(source: StudySource, outcome: StudyOutcome) -> None:
                    manifest.append(recorder.record(source, outcome))
                    progress.advance(source, outcome)

                _execute(to_run, job, emit, options=options, pipeline=pipeline)
        finally:  # also after Ctrl-C or SIGTERM: the workers are gone, their unfinished folders with them
            remove_stale_temporaries(out, every_owner=True)
        reports = finished_reports(out)
        failures = [r for r in last_attempts(read_manifest(manifest_path)).values() if r["status"] == "failed"]
        summary = write_summary(out, summary_rows(reports, failures, sources=recorder.labels(sources)))
        table = final_table(recorder.counts, prevalence(reports, config.levels.graded), finished=len(reports))
    return BatchResult(
        counts=recorder.counts,
        failed=recorder.failed,
        summary=summary,
        manifest=manifest_path,
        table=table,
        pipeline=pipeline,
        device=device,
        seconds=time.perf_counter() - started,
        not_attempted=not_attempted,
        removed_temporaries=removed,
        outcomes=recorder.records,
    )


def _validate(options: BatchOptions) -> None:
    if options.workers < 1:
        raise UsageError(f"--workers {options.workers} must be at least 1")
    if options.executor not in EXECUTORS:
        raise UsageError(f"--executor {options.executor!r} is not one of {', '.join(EXECUTORS)}")
    if options.pipeline not in PIPELINES:
        raise UsageError(f"--pipeline {options.pipeline!r} is not one of {', '.join(PIPELINES)}")
    if options.scheduler and options.executor != "dask":
        raise UsageError(f"--scheduler {options.scheduler} needs --executor dask")
    if options.executor == "dask" and options.pipeline == "cross-study":
        raise UsageError("--pipeline cross-study runs on one machine; use --executor local (Dask runs whole studies)")
    if options.retries < 0:
        raise UsageError(f"--retries {options.retries} must be 0 or more")
    if options.study_timeout is not None and not options.study_timeout > 0:
        raise UsageError(f"--study-timeout {options.study_timeout} must be a positive number of seconds")
    if options.study_timeout is not None and options.executor == "dask":
        raise UsageError(
            "--study-timeout applies to --executor local; Dask reschedules the studies of lost workers itself"
        )
    if options.batch_size is not None and options.batch_size < 1:
        raise UsageError(f"--batch-size {options.batch_size} must be at least 1")
    root, out = options.root.resolve(), options.out.resolve()
    if root.is_dir() and (out == root or root in out.parents):
        raise OutputFolderError(
            f"output folder '{options.out}' is inside the input '{options.root}'", remedy="outside_input",
            folder=str(options.out),
        )
    if root.is_dir() and out in root.parents:
        raise OutputFolderError(
            f"output folder '{options.out}' holds the input '{options.root}'", remedy="outside_input",
            folder=str(options.out),
        )


def _bundle_argument(model: str | None) -> str | None:
    """An existing bundle folder as an absolute path (workers may run elsewhere), a shipped name as is."""
    if model is None:
        return None
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def _pipeline(options: BatchOptions, device: str) -> str:
    if options.pipeline != "auto":
        return options.pipeline
    return "cross-study" if options.executor == "local" and device.startswith("cuda") else "per-study"


def _plan(
    sources: list[StudySource], out: Path, history: list[dict[str, Any]], *, retry_failed: bool
) -> tuple[list[tuple[StudySource, str]], list[StudySource], int]:
    """(finished studies with their key, studies to run, studies left out by ``--retry-failed``)."""
    last = last_attempts(history)
    finished: list[tuple[StudySource, str]] = []
    to_run: list[StudySource] = []
    not_attempted = 0
    for source in sources:
        previous = last.get(source.source_id)
        key = source.key or (previous.get("key") if previous and previous["status"] == "ok" else None)
        if key and is_complete(out / key):
            finished.append((source, key))
        elif retry_failed and (previous is None or previous["status"] != "failed"):
            not_attempted += 1
        else:
            to_run.append(source)
    return finished, to_run, not_attempted


def _execute(
    sources: list[StudySource],
    job: BatchJob,
    emit: Emit,
    *,
    options: BatchOptions,
    pipeline: str,
) -> None:
    runnable = []
    for source in sources:
        if source.error is not None:  # known unusable before reading (a bad CSV row, an unusable folder)
            emit(source, process_study(source, job))  # fails at once, without a worker
        else:
            runnable.append(source)
    sources = runnable
    if not sources:
        return
    if options.executor == "dask":
        run_dask(sources, job, emit, scheduler=options.scheduler, workers=options.workers, retries=options.retries)
    elif pipeline == "cross-study":
        run_cross_study(sources, job, emit, workers=options.workers, retries=options.retries,
                        time_limit=study_time_limit(options, settings=job.config.batch))
    else:
        run_local(sources, job, emit, workers=options.workers, retries=options.retries,
                  time_limit=study_time_limit(options, settings=job.config.batch))


def study_time_limit(options: BatchOptions, *, settings: BatchSettings) -> float:
    """Seconds a worker may spend on one study: ``--study-timeout``, else ``batch.study_timeout_s`` of the settings."""
    if options.study_timeout is not None:
        return float(options.study_timeout)
    return float(settings.study_timeout_s)


class _Recorder:
    """Turns outcomes into manifest records and keeps this run's counts."""

    def __init__(
        self, history: list[dict[str, Any]], *, run: str, device: str, pipeline: str, options: BatchOptions
    ) -> None:
        self.attempts = attempt_counts(history)
        self.keys: dict[str, str] = {str(r["key"]): str(r.get("source") or "") for r in history if r.get("key")}
        self.run = run
        self.device = device
        self.pipeline = pipeline
        self.keep_identifiers = options.keep_identifiers
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.failed: list[str] = []
        self.records: list[dict[str, Any]] = []

    def record(self, source: StudySource, outcome: StudyOutcome) -> dict[str, Any]:
        if outcome.status != "skipped":
            self.attempts[source.source_id] = self.attempts.get(source.source_id, 0) + 1
        self.counts[outcome.status] += 1
        if outcome.status == "failed":
            self.failed.append(f"{outcome.key or '-'} ({source.label}): {outcome.error}")
        if outcome.key:
            self.keys[outcome.key] = source.label
        record: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "run": self.run,
            "key": outcome.key,
            "source_id": source.source_id,
            "source": source.label,
            "status": outcome.status,
            "error": outcome.error,
            "timings": outcome.timings,
            "worker": outcome.worker,
            "attempt": self.attempts.get(source.source_id, 0),
            "device": self.device,
            "pipeline": self.pipeline,
        }
        if self.keep_identifiers:
            record["identifiers"] = dict(source.identifiers)
        self.records.append(record)
        return record

    def labels(self, sources: list[StudySource]) -> dict[str, str]:
        """Source description by study key, for summary.csv (this run's discovery wins)."""
        labels = dict(self.keys)
        labels.update({source.key: source.label for source in sources if source.key})
        return labels


def _run_id() -> str:
    return f"{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"


@contextlib.contextmanager
def _exclusive(lock: IO[str], *, out: Path) -> Iterator[None]:
    """Refuse a second batch writing into the same folder (the lock dies with the process, even on kill -9)."""
    with lock as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputFolderError(
                f"another modic batch is writing into '{out}'", remedy="wait", folder=str(out)
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class _Progress:
    """A tqdm bar (studies/s, ETA) on a terminal; otherwise one log line per finished study."""

    def __init__(self, total: int, *, bar: bool | None) -> None:
        from tqdm import tqdm

        self.total = total
        self.bar_enabled = sys.stderr.isatty() if bar is None else bar
        self.bar = tqdm(total=total, unit="study", desc="modic batch", dynamic_ncols=True, disable=not self.bar_enabled)
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _Progress:
        if self.bar_enabled:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._stack.enter_context(logging_redirect_tqdm(loggers=[logging.getLogger("modic")]))
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        self._stack.close()

    def advance(self, source: StudySource, outcome: StudyOutcome) -> None:
        self.done += 1
        if outcome.status == "failed":
            self.failed += 1
            log.warning("study %s (%s) failed: %s", outcome.key or "-", source.label, outcome.error)
        if self.bar_enabled:
            self.bar.set_postfix(failed=self.failed, refresh=False)
            self.bar.update(1)
            return
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        log.info(
            "[%d/%d] %s %s in %.1f s; %.2f studies/s, ETA %s",
            self.done,
            self.total,
            outcome.key or source.label,
            outcome.status,
            outcome.timings.get("total_s", 0.0),
            rate,
            duration(remaining),
        )
