"""Time study ingestion (:func:`modic.io.load_study`) on one CPU core.

Builds a study of two sagittal series (T1 and T2) of 20 slices of 512 x 512
pixels with :func:`modic.synth.dicom_writer.write_series` in a temporary
folder, then times ``load_study``: discovery, header reading, series choice,
pixel decoding, affine, and resampling of the T2 onto the T1 grid (the T2 is
written on a shifted grid so the resampling really runs). Reports the median
of several runs with a per-stage breakdown and the machine. Target: <= 1 s.

Files are read from the page cache after the first run (as on a workstation
re-running a study); the first, cold-ish run is reported separately.

Usage: python scripts/bench_ingest.py [--runs 7] [--same-grid] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs (median reported)")
    parser.add_argument("--same-grid", action="store_true", help="write the T2 on the T1 grid (no resampling)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    for name in THREAD_VARIABLES:  # before numpy/scipy/torch load their thread pools
        os.environ[name] = "1"
    pinned = _pin_one_core()
    import numpy as np
    import torch

    torch.set_num_threads(1)

    from modic.io.dicom_scan import scan_folder
    from modic.io.dicom_volume import load_series
    from modic.io.resample import resample_to
    from modic.io.series_select import select_series
    from modic.io.study import load_study

    with tempfile.TemporaryDirectory(prefix="modic-bench-") as tmp:
        root = Path(tmp) / "study"
        _write_study(root, same_grid=args.same_grid)

        start = time.perf_counter()
        first = load_study(root)
        cold = time.perf_counter() - start
        assert first.t1 is not None and first.t2 is not None

        totals: list[float] = []
        stages: dict[str, list[float]] = {"scan": [], "select": [], "pixels": [], "resample": []}
        for _ in range(args.runs):
            start = time.perf_counter()
            load_study(root)
            totals.append(time.perf_counter() - start)

            t0 = time.perf_counter()
            scan = scan_folder(root)
            t1 = time.perf_counter()
            selection = select_series(scan.studies[0])
            t2 = time.perf_counter()
            t1_volume = load_series(selection.t1).volume  # type: ignore[arg-type]
            t2_volume = load_series(selection.t2).volume  # type: ignore[arg-type]
            t3 = time.perf_counter()
            resample_to(t2_volume, t1_volume)
            t4 = time.perf_counter()
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                stages[key].append(value)

    result: dict[str, Any] = {
        "study": "2 series x 20 slices x 512 x 512, uncompressed, T2 "
        + ("on the T1 grid" if args.same_grid else "on a shifted grid"),
        "runs": args.runs,
        "median_s": round(statistics.median(totals), 4),
        "min_s": round(min(totals), 4),
        "max_s": round(max(totals), 4),
        "first_run_s": round(cold, 4),
        "stage_median_s": {key: round(statistics.median(values), 4) for key, values in stages.items()},
        "target_s": 1.0,
        "machine": {
            "cpu": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "pinned_to_core": pinned,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"load_study on {result['study']}")
        print(
            f"median {result['median_s']:.3f} s over {args.runs} runs (min {result['min_s']:.3f}, "
            f"max {result['max_s']:.3f}; first run {result['first_run_s']:.3f}); target <= 1 s"
        )
        print("stages (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in result["stage_median_s"].items()))
        machine = result["machine"]
        print(
            f"machine: {machine['cpu']}, {machine['logical_cores']} logical cores, "
            f"pinned to core {machine['pinned_to_core']}, "
            f"python {machine['python']}, numpy {machine['numpy']}, torch threads {machine['torch_threads']}"
        )
    return 0


def _write_study(root: Path, *, same_grid: bool) -> None:
    import numpy as np

    from modic.io.volume import Volume, lps_to_ras
    from modic.synth.dicom_writer import PatientStudy, SeriesProtocol, write_series

    rng = np.random.default_rng(0)
    patient = PatientStudy(
        patient_name="BENCH^INGEST",
        patient_id="BENCH",
        birth_date="19700101",
        sex="M",
        study_uid="1.2.826.0.1.3680043.10.1543.7.1",
    )

    def affine(origin: tuple[float, float, float], pixel: float) -> Any:
        lps = np.eye(4)
        lps[:3, 0] = [0.0, pixel, 0.0]
        lps[:3, 1] = [0.0, 0.0, -pixel]
        lps[:3, 2] = [-3.3, 0.0, 0.0]
        lps[:3, 3] = origin
        return lps_to_ras(lps)

    shape = (512, 512, 20)
    t1 = Volume(rng.integers(0, 2000, size=shape).astype(np.float32), affine((33.0, -90.0, 120.0), 0.5))
    t2_affine = t1.affine if same_grid else affine((34.5, -88.7, 121.3), 0.52)
    t2 = Volume(rng.integers(0, 2000, size=shape).astype(np.float32), t2_affine)
    write_series(t1, root / "t1", patient=patient, protocol=SeriesProtocol("t1_tse_sag", 3, 550, 11))
    write_series(t2, root / "t2", patient=patient, protocol=SeriesProtocol("t2_tse_sag", 4, 3500, 95))


def _pin_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
