"""Benchmark ``modic batch``: per-stage latency of one study, and throughput with 1 and 2 CPU workers (and a GPU).

Synthetic studies (:mod:`modic.synth`, seeds 1000+): a sagittal T1 and a
sagittal T2 of 15 slices of 512 x 512 pixels each (300 mm field of view,
0.59 mm pixels, about 4.3 mm slices), written as DICOM. The studies are
generated once into ``--data`` (reused when present).

1. Latency: one study after the other in this process with warm models
   (the code path of ``modic batch --workers 1``); median per stage (read,
   pre-process, segment, levels, classify, report) and end to end.
2. Throughput: ``run_batch`` on all studies with ``--workers 1`` and
   ``--workers 2`` (process pool), and on a GPU (when present) the
   cross-study pipeline with mixed precision while sampling GPU
   utilisation with ``nvidia-smi``. Studies/min are given over the whole
   run (worker start-up included) and in the steady state (from the
   completion of the first round of studies to the last one).
   With ``--core-per-worker`` each N-worker run may use only N cores (the
   process's CPU affinity, which the workers inherit), so the scaling line
   compares equal cores per worker rather than one worker that already
   uses every core against several.

The load average before and after is reported: other processes on the
machine slow every wall-clock figure down. The CPU time per study (user +
system of the batch process and its workers) depends little on the load;
on an otherwise idle machine with C cores, C x 60 / (CPU s per study)
bounds the throughput in studies/min.

Usage: python scripts/bench.py [--studies 8] [--latency-studies 3] [--data DIR] [--markdown FILE]
       [--workers 1 2] [--core-per-worker] [--gpu-workers N] [--gpu-batch-size 64] [--no-dicom]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

SERIES = {"matrix": [512], "fov": [300.0, 300.0], "n_slices": [15, 15]}
SYNTH_CONFIG = {"extends": "default", "name": "bench", "series": {"t1": SERIES, "t2": SERIES}}
STAGES = ("read_s", "preprocess_s", "segment_s", "levels_s", "classify_s", "report_s", "total_s")
FIRST_SEED = 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=8, help="studies in the throughput runs (default 8)")
    parser.add_argument("--latency-studies", type=int, default=3, help="studies timed one by one (default 3)")
    parser.add_argument("--data", type=Path, help="folder for the synthetic studies (reused; default: temporary)")
    parser.add_argument("--markdown", type=Path, help="also write the markdown table to this file")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="CPU worker counts (default 1 2)")
    parser.add_argument("--core-per-worker", action="store_true",
                        help="run each N-worker configuration on N cores only (CPU affinity)")
    parser.add_argument("--gpu-workers", type=int, help="pre-processing workers on a GPU (default: cores - 1)")
    parser.add_argument("--gpu-batch-size", type=int, default=64, help="slices per forward pass on a GPU (default 64)")
    parser.add_argument("--no-dicom", action="store_true", help="do not write DICOM SEG and SR (as --no-dicom)")
    args = parser.parse_args(argv)

    import torch

    from modic.batch.executors import available_cores

    if args.core_per_worker and max(args.workers) > available_cores():
        parser.error(f"--core-per-worker: {max(args.workers)} workers need as many cores; "
                     f"this process may use {available_cores()}: give fewer --workers")

    scratch = Path(tempfile.mkdtemp(prefix="modic-bench-"))
    data = args.data or scratch / "data"
    try:
        root = _studies(data, max(args.studies, args.latency_studies + 1))
        load_before = os.getloadavg()
        started = time.perf_counter()
        latency = _latency(root, count=args.latency_studies, dicom=not args.no_dicom, out=scratch / "latency")
        runs = []
        for workers in args.workers:
            label = f"CPU, {workers} worker(s)" + (f" on {workers} core(s)" if args.core_per_worker else "")
            with _cores(workers) if args.core_per_worker else nullcontext():
                runs.append(_throughput(root, scratch / f"cpu{workers}", label=label, workers=workers,
                                        device="cpu", pipeline="per-study", limit=args.studies,
                                        dicom=not args.no_dicom))
        if torch.cuda.is_available():
            gpu_workers = args.gpu_workers or max(1, available_cores() - 1)
            runs.append(_throughput(root, scratch / "gpu", label=f"GPU cross-study, {gpu_workers} CPU worker(s)",
                                    workers=gpu_workers, device="cuda", pipeline="cross-study", limit=args.studies,
                                    dicom=not args.no_dicom, batch_size=args.gpu_batch_size, sample_gpu=True))
        load_after = os.getloadavg()
        text = _markdown(latency, runs, studies=args.studies, dicom=not args.no_dicom,
                         load=(load_before, load_after), seconds=time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(text)
    if args.markdown:
        from modic.atomic import write_text

        write_text(args.markdown, text + "\n")
    return 0


@contextmanager
def _cores(count: int) -> Iterator[None]:
    """Restrict this process (and the workers it starts) to the first ``count`` cores it may use."""
    import torch

    allowed = sorted(os.sched_getaffinity(0))
    threads = torch.get_num_threads()
    os.sched_setaffinity(0, allowed[:count])
    torch.set_num_threads(count)
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)


def _studies(data: Path, count: int) -> Path:
    """``data/<seed>/`` folders of ``count`` synthetic DICOM studies (generated when missing)."""
    from modic.synth import generate_study, write_study

    for seed in range(FIRST_SEED, FIRST_SEED + count):
        if not (data / str(seed)).exists():
            print(f"generating synthetic study {seed} (T1+T2, 15 x 512 x 512)", file=sys.stderr)
            write_study(generate_study(seed=seed, config=SYNTH_CONFIG), data / str(seed), formats=("dicom",))
    return data


def _latency(root: Path, *, count: int, dicom: bool, out: Path) -> dict[str, Any]:
    """Stage timings of ``count`` studies run one by one in this process after one warm-up study."""
    import torch

    from modic.batch.sources import discover
    from modic.batch.worker import BatchJob, process_study
    from modic.settings import load_settings

    sources = discover(root)[: count + 1]
    out.mkdir(parents=True, exist_ok=True)
    job = BatchJob(out=out.resolve(), config=load_settings(), device="cpu", dicom=dicom)
    outcomes = []
    cpu = []
    for index, source in enumerate(sources):
        started = time.process_time()
        outcome = process_study(source, job)
        if outcome.status != "ok":
            raise SystemExit(f"benchmark study failed: {outcome.error}")
        if index:
            outcomes.append(outcome.timings)
            cpu.append(time.process_time() - started)
    shape = _study_shape(sources[0])
    return {
        "median": {stage: statistics.median(t[stage] for t in outcomes) for stage in STAGES},
        "cpu_s": statistics.median(cpu),
        "studies": len(outcomes),
        "threads": torch.get_num_threads(),
        "shape": shape,
    }


def _study_shape(source: Any) -> str:
    from modic.io.study import load_study_index

    images = load_study_index(source.index)
    return ", ".join(f"{role.upper()} {'x'.join(str(n) for n in info.shape)} at "
                     f"{'x'.join(f'{s:.2f}' for s in info.spacing)} mm" for role, info in sorted(images.series.items()))


def _throughput(
    root: Path,
    out: Path,
    *,
    label: str,
    workers: int,
    device: str,
    pipeline: str,
    limit: int,
    dicom: bool,
    batch_size: int | None = None,
    sample_gpu: bool = False,
) -> dict[str, Any]:
    from modic.batch import BatchOptions, run_batch
    from modic.batch.manifest import read_manifest

    subset = out.parent / f"{out.name}-input"
    subset.mkdir(parents=True)
    for folder in sorted(root.iterdir())[:limit]:
        os.symlink(folder, subset / folder.name)
    sampler = _GpuSampler() if sample_gpu else None
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    result = run_batch(BatchOptions(root=subset, out=out, workers=workers, device=device, pipeline=pipeline,
                                    dicom=dicom, batch_size=batch_size, progress_bar=False))
    wall = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    utilisation = sampler.stop() if sampler else None
    records = [r for r in read_manifest(out / "manifest.jsonl") if r["status"] == "ok"]
    if result.counts["ok"] != limit:
        raise SystemExit(f"{label}: {result.counts} (expected {limit} ok): {result.failed}")
    done = sorted(dt.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() for r in records)
    first_round = min(workers, len(done)) - 1
    steady = (len(done) - 1 - first_round) / (done[-1] - done[first_round]) if len(done) - 1 > first_round else None
    return {
        "label": label,
        "studies": len(records),
        "wall_s": wall,
        "per_min_wall": 60.0 * len(records) / wall,
        "per_min_steady": 60.0 * steady if steady else None,
        "gpu_utilisation": utilisation,
        "median_total_s": statistics.median(r["timings"]["total_s"] for r in records),
        "cpu_per_study_s": cpu / len(records),
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (pool workers are reaped at shutdown)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class _GpuSampler:
    """Mean GPU utilisation (%) reported by ``nvidia-smi`` every 200 ms while it runs."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                line = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"],
                    capture_output=True, text=True, timeout=5, check=True,
                ).stdout.strip()
                self.values.append(float(line.splitlines()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return statistics.mean(self.values) if self.values else None


def _machine() -> list[str]:
    import torch

    from modic.batch.executors import available_cores

    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 ** 2:.0f} GiB RAM"
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"- CPU: {model}, {available_cores()} core(s) available{memory}",
        f"- GPU: {gpu}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, {platform.system()} {platform.release()}",
    ]


def _markdown(
    latency: dict[str, Any],
    runs: list[dict[str, Any]],
    *,
    studies: int,
    dicom: bool,
    load: tuple[tuple[float, ...], tuple[float, ...]],
    seconds: float,
) -> str:
    median = latency["median"]
    lines = [
        f"### modic batch benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        *_machine(),
        f"- Load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load[0])} before, "
        f"{', '.join(f'{v:.2f}' for v in load[1])} after ({seconds:.0f} s of benchmark)",
        f"- Studies: synthetic, {latency['shape']}; outputs {'with' if dicom else 'without'} DICOM SEG/SR",
        "",
        f"Latency of one study, warm models, {latency['threads']} torch thread(s), median of {latency['studies']}:",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    names = {"read_s": "read (DICOM)", "preprocess_s": "pre-process", "segment_s": "segment",
             "levels_s": "levels/endplates", "classify_s": "classify", "report_s": "report (all outputs)",
             "total_s": "**end to end**"}
    lines += [f"| {names[stage]} | {median[stage]:.2f} |" for stage in STAGES]
    lines += [f"| CPU time of the study (user + system, all threads) | {latency['cpu_s']:.2f} |"]
    lines += [
        "",
        f"Throughput on {studies} studies (`run_batch`):",
        "",
        "| configuration | wall s | studies/min (whole run) | studies/min (steady state) | median s/study "
        "| CPU s/study | GPU busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        steady = f"{run['per_min_steady']:.1f}" if run["per_min_steady"] else "n/a"
        gpu = f"{run['gpu_utilisation']:.0f}%" if run["gpu_utilisation"] is not None else "-"
        lines.append(f"| {run['label']} | {run['wall_s']:.1f} | {run['per_min_wall']:.1f} | {steady} | "
                     f"{run['median_total_s']:.2f} | {run['cpu_per_study_s']:.1f} | {gpu} |")
    cpu = [r for r in runs if r["label"].startswith("CPU") and r["per_min_steady"]]
    if len(cpu) >= 2:
        lines += ["", f"Scaling {cpu[0]['label']} -> {cpu[-1]['label']} (steady state): "
                  f"x{cpu[-1]['per_min_steady'] / cpu[0]['per_min_steady']:.2f}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
