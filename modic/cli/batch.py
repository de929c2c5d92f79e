"""``modic batch ROOT -o OUT``: analyse every study of a cohort, resumably, on one machine or a Dask cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from modic import RESEARCH_NOTICE
from modic.cli.options import add_input, add_method_option, add_model_option, input_of, output_flags

SHOWN_FAILURES = 20
"""Failed studies listed at the end; all of them are in manifest.jsonl and summary.csv."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="analyse every study under a folder (or listed in a CSV) into OUT/<study key>/",
        description=(
            "Analyse every study under ROOT (one study per StudyInstanceUID, whatever the folder layout) or "
            "listed in a cohort CSV, as 'modic analyze' does, into OUT/<study key>/, with OUT/summary.csv and "
            "OUT/manifest.jsonl. Rerunning skips finished studies. See docs/batch.md."
        ),
    )
    add_input(parser, "root", metavar="ROOT",
              help="folder of DICOM studies (any layout), or a CSV with columns study or t1,t2 (and id)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (created; reused on reruns)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes (default 1); with --executor dask and no --scheduler, "
                        "the LocalCluster's workers")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="local: this machine (default); dask: a Dask distributed cluster")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                        help="address of a running Dask scheduler (default with --executor dask: start a LocalCluster)")
    parser.add_argument("--pipeline", choices=("auto", "per-study", "cross-study"), default="auto",
                        help="per-study: each worker runs whole studies; cross-study: workers read and pre-process, "
                        "one process segments many studies per forward pass; auto (default): cross-study on a GPU")
    parser.add_argument("--batch-size", type=int,
                        help="image slices per forward pass of the network (default: the analysis settings', 16)")
    parser.add_argument("--retries", type=int, default=2,
                        help="extra tries of a study whose worker died or hit an unexpected error (default 2)")
    parser.add_argument("--study-timeout", type=float, metavar="SECONDS",
                        help="kill a worker that spends longer on one study and record the study as failed "
                        "(default: 3600, set in configs/batch.yaml)")
    parser.add_argument("--retry-failed", action="store_true", help="run only the studies whose last attempt failed")
    parser.add_argument("--keep-identifiers", action="store_true",
                        help="keep patient identifiers in report.json and input paths/UIDs in the manifest")
    parser.add_argument("--no-dicom", action="store_true", help="do not write DICOM SEG and SR")
    parser.add_argument("--config", type=Path,
                        help="YAML with only the settings to change, merged onto the shipped configs/ (see modic analyze)")
    add_model_option(parser)
    add_method_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modic.batch import BatchOptions, run_batch

    with output_flags():
        result = run_batch(
            BatchOptions(
                root=input_of(args, "root"),
                out=args.output,
                workers=args.workers,
                device=args.device,
                executor=args.executor,
                scheduler=args.scheduler,
                pipeline=args.pipeline,
                retry_failed=args.retry_failed,
                keep_identifiers=args.keep_identifiers,
                dicom=not args.no_dicom,
                config=args.config,
                method=args.method,
                model=args.model,
                batch_size=args.batch_size,
                retries=args.retries,
                study_timeout=args.study_timeout,
            )
        )
    print(result.table)
    for line in result.failed[:SHOWN_FAILURES]:
        print(f"  failed: {line}")
    if len(result.failed) > SHOWN_FAILURES:
        print(f"  ... and {len(result.failed) - SHOWN_FAILURES} more failed studies: see the manifest")
    print(f"summary: {result.summary}")
    print(f"manifest: {result.manifest}")
    print(RESEARCH_NOTICE)
    return result.exit_code
