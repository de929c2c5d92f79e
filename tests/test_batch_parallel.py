"""Parallel execution on one machine: ``--workers 2`` and the cross-study pipeline, each with a worker killed mid-run.

The cross-study pipeline is the GPU path (workers read and pre-process, one
process segments many studies per forward pass); here it runs on the CPU in
fp32 and must give the per-study results.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import pytest
from helpers.batch import levels_of, make_cohort, manifest, summary

from modic.batch import BatchOptions, BatchResult, run_batch

pytestmark = pytest.mark.slow


def _spawned_workers() -> list[psutil.Process]:
    """Live worker processes (spawn context) started by this process."""
    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # ended meanwhile, or a killed worker not yet reaped (zombie)
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            workers.append(child)
    return workers


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("batch_parallel")
    return SimpleNamespace(base=base, root=base / "root", keys=make_cohort(base, (61, 62, 63, 64)))


def _run_killing_a_worker(options: BatchOptions) -> SimpleNamespace:
    """Run the batch in a thread and SIGKILL one of its two worker processes once a study has finished."""
    results: list[BatchResult] = []
    thread = threading.Thread(target=lambda: results.append(run_batch(options)))
    thread.start()
    killed, original, replacements = None, set(), set()
    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline:
        workers = _spawned_workers()
        if killed is None and manifest(options.out) and len(workers) == 2:
            killed, original = workers[0].pid, {w.pid for w in workers}
            os.kill(killed, signal.SIGKILL)
        elif killed is not None:
            replacements |= {w.pid for w in workers} - original
            if replacements:
                break
        time.sleep(0.1)
    thread.join(timeout=600)
    assert not thread.is_alive() and results, "the batch did not finish"
    return SimpleNamespace(out=options.out, result=results[0], killed=killed, original=original,
                           replacements=replacements, manifest=manifest(options.out))


@pytest.fixture(scope="module")
def pool_run(cohort: SimpleNamespace) -> SimpleNamespace:
    return _run_killing_a_worker(BatchOptions(root=cohort.root, out=cohort.base / "pool", workers=2, device="cpu",
                                              dicom=False, pipeline="per-study", progress_bar=False))


def test_workers_2_recover_from_a_killed_worker(pool_run: SimpleNamespace, cohort: SimpleNamespace) -> None:
    assert pool_run.killed is not None, "no worker was killed: the batch finished too early"
    assert pool_run.result.exit_code == 0 and pool_run.result.counts == {"ok": 4, "failed": 0, "skipped": 0}
    ok = collections.Counter(r["key"] for r in pool_run.manifest if r["status"] == "ok")
    assert ok == {key: 1 for key in cohort.keys}, "every study is recorded once"
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in pool_run.manifest}
    assert os.getpid() not in pids, "studies run in worker processes"
    assert pool_run.replacements, "a fresh worker replaced the killed one"
    assert pids <= pool_run.original | pool_run.replacements
    assert {r["pipeline"] for r in pool_run.manifest} == {"per-study"}
    assert sorted({r["study_key"] for r in summary(pool_run.out)}) == sorted(cohort.keys)
    assert not [p for p in pool_run.out.iterdir() if p.name.startswith(".modic-tmp-")]


def test_cross_study_pipeline_gives_the_per_study_results(pool_run: SimpleNamespace, cohort: SimpleNamespace) -> None:
    out = cohort.base / "cross"
    run = _run_killing_a_worker(BatchOptions(root=cohort.root, out=out, workers=2, device="cpu", dicom=False,
                                             pipeline="cross-study", batch_size=8, progress_bar=False))
    assert run.killed is not None, "no worker was killed: the batch finished too early"
    assert run.result.exit_code == 0 and run.result.pipeline == "cross-study"
    assert collections.Counter(r["key"] for r in run.manifest if r["status"] == "ok") == {k: 1 for k in cohort.keys}
    assert {r["pipeline"] for r in run.manifest} == {"cross-study"}
    assert run.replacements, "a fresh worker replaced the killed one"
    assert all(r["timings"]["segment_s"] > 0 and r["timings"]["preprocess_s"] > 0 for r in run.manifest)
    for key in cohort.keys:
        assert levels_of(out / key) == levels_of(pool_run.out / key)
        ours = [(r["endplate"], float(r["confidence"])) for r in summary(out) if r["study_key"] == key]
        theirs = [(r["endplate"], float(r["confidence"])) for r in summary(pool_run.out) if r["study_key"] == key]
        assert [e for e, _ in ours] == [e for e, _ in theirs]
        np.testing.assert_allclose([c for _, c in ours], [c for _, c in theirs], atol=2e-3)
    assert not list(Path(out).glob(".modic-tmp-*")), "the scratch folder and temporaries are removed"
