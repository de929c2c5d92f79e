"""``--executor dask`` on a LocalCluster on loopback (2 worker processes, 1 thread each), one worker killed mid-run."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from helpers.batch import make_cohort, manifest, study_folders, summary

from modic.batch import BatchOptions, BatchResult, run_batch

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def test_dask_cluster_survives_a_killed_worker(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    keys = make_cohort(tmp_path, (71, 72, 73, 74))

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        pids = client.run(os.getpid)
        options = BatchOptions(root=root, out=out, executor="dask", scheduler=cluster.scheduler_address, workers=2,
                               device="cpu", dicom=False, progress_bar=False)
        results: list[BatchResult] = []
        thread = threading.Thread(target=lambda: results.append(run_batch(options)))
        thread.start()
        killed: tuple[int, list[str]] | None = None
        deadline = time.monotonic() + 300
        while thread.is_alive() and killed is None and time.monotonic() < deadline:
            busy = {address: list(tasks) for address, tasks in client.processing().items() if tasks}
            if manifest(out) and busy:
                address, tasks = next(iter(busy.items()))
                os.kill(pids[address], signal.SIGKILL)
                killed = (pids[address], tasks)
            time.sleep(0.1)
        thread.join(timeout=600)
        assert not thread.is_alive() and results, "the batch did not finish"

    assert killed is not None, "no busy worker was killed: the batch finished too early"
    result = results[0]
    assert result.exit_code == 0 and result.counts == {"ok": 4, "failed": 0, "skipped": 0}
    records = manifest(out)
    assert collections.Counter(r["key"] for r in records if r["status"] == "ok") == {key: 1 for key in keys}
    killed_pid, killed_tasks = killed
    affected = {task.split("-")[2] for task in killed_tasks}
    assert affected <= set(keys), "task keys name the study"
    for record in records:
        if record["key"] in affected:
            assert not record["worker"].endswith(f":{killed_pid}"), "the killed worker's study was run again elsewhere"
    rows = summary(out)
    assert sorted({r["study_key"] for r in rows}) == sorted(keys)
    pairs = [(r["study_key"], r["endplate"]) for r in rows]
    assert len(pairs) == len(set(pairs)), "no study is duplicated in summary.csv"
    assert set(study_folders(out)) == set(keys), "no temporaries remain"
