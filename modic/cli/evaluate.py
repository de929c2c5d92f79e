"""``modic evaluate seg|spider``: run the pipeline on a labelled dataset folder and report metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from modic import atomic
from modic.cli.options import add_method_option, add_model_option
from modic.settings import load_settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure the pipeline on a labelled dataset",
        description=(
            "Run the analysis on a labelled dataset (or on synthetic studies with planted changes) and write the "
            "measured agreement as a metrics JSON file; the table is printed."
        ),
    )
    targets = parser.add_subparsers(dest="target", metavar="TARGET", parser_class=type(parser))
    targets.required = True

    seg = targets.add_parser(
        "seg", help="segmentation Dice and level identification (lumbar_seg or spider_t2space layout)"
    )
    seg.add_argument(
        "-i", "--input", "--data",
        dest="data",
        required=True,
        type=Path,
        help="folder with images/, labels/ and cases.csv (a cases.csv keyed by 'patient' is read as spider_t2space)",
    )
    _common(seg)
    seg.set_defaults(handler=run_seg)

    spider = targets.add_parser(
        "spider",
        help="Modic grading against radiologists: T1/T2 slice pairs (spider_midsag layout) or 3D T2 volumes "
        "(spider_t2space layout, presence only)",
    )
    spider.add_argument(
        "-i", "--input", "--data", dest="data", required=True, type=Path,
        help="folder with images/ and gradings.csv, plus series.csv (spider_midsag) or cases.csv (spider_t2space)",
    )
    _common(spider)
    add_method_option(spider)
    spider.set_defaults(handler=run_spider)

    synthetic = targets.add_parser("synthetic", help="Modic grading on synthetic studies with planted changes")
    synthetic.add_argument("--n", type=int, default=20, help="number of studies (default: 20)")
    synthetic.add_argument("--seed", type=int, default=900000, help="seed of the first study (default: 900000)")
    synthetic.add_argument("--synth-config", default="default", help="generator config name or file (default: default)")
    _common(synthetic)
    add_method_option(synthetic)
    synthetic.set_defaults(handler=run_synthetic)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", "--out", dest="out", required=True, type=Path,
                        help="metrics JSON file to write")
    parser.add_argument("--config", type=Path,
                        help="YAML with only the settings to change, merged onto the shipped configs/ (see modic analyze)")
    add_model_option(parser)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def run_seg(args: argparse.Namespace) -> int:
    from modic.evaluation.segmentation import evaluate_folder
    from modic.evaluation.segmentation_spider import evaluate_spider_t2space
    from modic.datasets.spider_t2space import is_spider_t2space_layout
    from modic.pipeline import Models

    config = load_settings(args.config)
    models = Models.load(config, device=args.device, bundle=args.model)
    if is_spider_t2space_layout(args.data):
        metrics = evaluate_spider_t2space(args.data, model=models.segmenter, levels=config.levels)
        table = _spider_seg_table(metrics)
    else:
        metrics = evaluate_folder(args.data, model=models.segmenter, levels=config.levels)
        table = _seg_table(metrics)
    metrics["model"] = models.info["segmentation"]
    _write(args.out, metrics)
    print(table)
    return 0


def run_spider(args: argparse.Namespace) -> int:
    from modic.classification.factory import with_method
    from modic.evaluation.spider import evaluate_spider, format_summary
    from modic.pipeline import Models

    config = with_method(load_settings(args.config), args.method)
    models = Models.load(config, device=args.device, bundle=args.model)
    metrics = evaluate_spider(args.data, models=models, config=config)
    metrics["model"] = models.info
    _write(args.out, metrics)
    print(format_summary(metrics))
    return 0


def run_synthetic(args: argparse.Namespace) -> int:
    from modic.classification.factory import with_method
    from modic.errors import UsageError
    from modic.evaluation.synthetic import evaluate_synthetic, format_summary
    from modic.pipeline import Models

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    config = with_method(load_settings(args.config), args.method)
    models = Models.load(config, device=args.device, bundle=args.model)
    metrics = evaluate_synthetic(n=args.n, seed=args.seed, synth_config=args.synth_config, models=models, config=config)
    metrics["model"] = models.info
    _write(args.out, metrics)
    print(format_summary(metrics))
    return 0


def _write(path: Path, metrics: dict[str, Any]) -> None:
    atomic.write_text(path, json.dumps(metrics, indent=2) + "\n")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _spider_seg_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'patient':<10} {'body':>6} {'disc':>6} {'levels':>7}  level warnings / failure"]
    for case in metrics["cases"]:
        level = "ok" if case["level_correct"] else "WRONG"
        note = case["failed"] or ", ".join(case["level_warnings"]) or "-"
        lines.append(
            f"{case['case']:<10} {case['dice_vertebral_body']:>6.3f} {case['dice_disc']:>6.3f} {level:>7}  {note}"
        )
    lines.append(
        f"mean Dice: vertebral body {_fmt(metrics['mean_dice_vertebral_body'])}, disc {_fmt(metrics['mean_dice_disc'])}; "
        f"level accuracy {_fmt(metrics['level_accuracy'])} ({metrics['n_cases']} patients, "
        f"{len(metrics['failed'])} failed)"
    )
    return "\n".join(lines)


def _seg_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'case':<12} {'structure':<15} {'dice':>6} {'matched':>8} {'levels':>7}  level warnings"]
    for case in metrics["cases"]:
        level = {True: "ok", False: "WRONG", None: "-"}[case["level_correct"]]
        lines.append(
            f"{case['case']:<12} {case['structure']:<15} {case['dice']:>6.3f} "
            f"{case['n_matched']:>3}/{case['n_labelled']:<4} {level:>7}  {', '.join(case['level_warnings']) or '-'}"
        )
    lines.append(
        f"mean Dice: vertebral body {_fmt(metrics['mean_dice_vertebral_body'])}, disc {_fmt(metrics['mean_dice_disc'])}; "
        f"level accuracy {_fmt(metrics['level_accuracy'])} ({metrics['n_cases_with_levels']} cases)"
    )
    lines.append(
        f"misnamed cases: {metrics['n_misnamed_with_warning']} with a level warning, "
        f"{metrics['n_misnamed_without_warning']} without; correctly named cases with a warning: "
        f"{metrics['n_correct_with_warning']}"
    )
    return "\n".join(lines)
