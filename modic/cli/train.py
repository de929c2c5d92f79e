"""``modic train seg|grade|presence|orientation``: the segmentation network, the grading models, the presence models or the orientation check."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("modic")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a training settings file in configs/",
        description=(
            "Train the segmentation network (seg), the learned grading models (grade) or the presence models "
            "(presence) from a training settings file, write checkpoints and metrics into a run folder and, with "
            "--export (presence: -o), the model bundle."
        ),
    )
    models = parser.add_subparsers(dest="model", metavar="MODEL", parser_class=type(parser))
    models.required = True
    seg = models.add_parser("seg", help="vertebra/disc/S1 segmentation network")
    seg.add_argument("--config", required=True, help="training YAML, e.g. configs/seg/train.yaml")
    seg.add_argument("-o", "--output",
                     help="run folder for checkpoints and metrics (default: the one the settings file names)")
    seg.add_argument("--lumbar-seg", metavar="DIR",
                     help="dataset folder in the lumbar_seg layout (default: the one the settings file names)")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    seg.add_argument("--export", metavar="BUNDLE_DIR", help="write the best model as a MONAI bundle here")
    seg.add_argument("--epochs", type=int, help="number of training epochs (default: the settings file's)")
    seg.set_defaults(handler=run_seg)

    grade = models.add_parser("grade", help="learned Modic grading model (cross-validated on radiologists' gradings)")
    grade.add_argument("--config", required=True, help="training YAML, e.g. configs/grade/train.yaml")
    grade.add_argument("-o", "--output", help="run folder (default: the one the settings file names)")
    grade.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    grade.add_argument("--export", metavar="BUNDLE_DIR", help="write the model bundle here")
    grade.add_argument("--fresh", action="store_true", help="recompute samples instead of reusing the cached ones")
    grade.set_defaults(handler=run_grade)

    presence = models.add_parser(
        "presence", help="calibrated change-presence models (cross-validated on radiologists' gradings)",
        description=(
            "Measure every graded SPIDER patient with the pipeline, cross-validate the presence models by patient "
            "(penalty, T2 training source and thresholds chosen on training folds), refit them on all patients and "
            "write the bundle with its cross-validated figures and calibration tables."
        ),
    )
    presence.add_argument("--config", required=True, help="training YAML, e.g. configs/presence/train.yaml")
    presence.add_argument("-o", "--output", required=True, help="bundle folder to write, e.g. models/modic_presence")
    presence.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    presence.set_defaults(handler=run_presence)

    orientation = models.add_parser(
        "orientation", help="upright/upside-down check of sagittal images (an input check)",
        description=(
            "Train the small network that tells an upright sagittal image from one stored head to foot, on the "
            "training half of the labelled datasets and synthetic studies, and write the bundle with --export."
        ),
    )
    orientation.add_argument("--config", required=True, help="training YAML, e.g. configs/orientation/train.yaml")
    orientation.add_argument("-o", "--output", help="run folder (default: the one the settings file names)")
    orientation.add_argument("--export", metavar="BUNDLE_DIR", help="write the model bundle here")
    orientation.add_argument("--fresh", action="store_true", help="read the pictures again instead of the cached ones")
    orientation.set_defaults(handler=run_orientation)


def run_seg(args: argparse.Namespace) -> int:
    from modic.training.segmentation import train
    from modic.training.settings import load_train_config

    overrides = {}
    if args.lumbar_seg:
        overrides["data.lumbar_seg"] = args.lumbar_seg
    if args.epochs:
        overrides["training.epochs"] = args.epochs
    config = load_train_config(args.config, overrides=overrides)
    result = train(config, output_dir=args.output, device=args.device, export_bundle=args.export)
    print(json.dumps(result, indent=2))
    return 0


def run_presence(args: argparse.Namespace) -> int:
    from modic.training.presence import train_presence

    report = train_presence(args.config, output=args.output, device=args.device)
    print(json.dumps(report, indent=2, default=float))
    return 0


def run_grade(args: argparse.Namespace) -> int:
    from modic.training.grading import train_grade

    result = train_grade(
        args.config, output_dir=args.output, device=args.device, export_bundle=args.export, reuse_samples=not args.fresh
    )
    print(json.dumps({k: v for k, v in result.items() if k != "failed_patients"}, indent=2))
    return 0


def run_orientation(args: argparse.Namespace) -> int:
    from modic.training.orientation import train_orientation

    result = train_orientation(
        args.config, output_dir=args.output, export_bundle=args.export, reuse_pictures=not args.fresh
    )
    print(json.dumps(result, indent=2))
    return 0
