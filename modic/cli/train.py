"""``modic train seg|grade|orientation``: train the segmentation network, the grading models or the orientation check."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger("modic")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a model from a config in configs/")
    models = parser.add_subparsers(dest="model", metavar="MODEL", parser_class=type(parser))
    models.required = True
    seg = models.add_parser("seg", help="vertebra/disc/S1 segmentation network")
    seg.add_argument("--config", required=True, help="training YAML, e.g. configs/seg/train.yaml")
    seg.add_argument("--output", help="run folder for checkpoints and metrics (default: the config's output_dir)")
    seg.add_argument("--lumbar-seg", metavar="DIR", help="dataset folder in the lumbar_seg layout (overrides data.lumbar_seg)")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    seg.add_argument("--export", metavar="BUNDLE_DIR", help="write the best model as a MONAI bundle here")
    seg.add_argument("--epochs", type=int, help="override training.epochs")
    seg.set_defaults(handler=run_seg)

    grade = models.add_parser("grade", help="learned Modic grading model (cross-validated on radiologists' gradings)")
    grade.add_argument("--config", required=True, help="training YAML, e.g. configs/grade/train.yaml")
    grade.add_argument("--output", help="run folder (default: the config's output_dir)")
    grade.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    grade.add_argument("--export", metavar="BUNDLE_DIR", help="write the model bundle here")
    grade.add_argument("--fresh", action="store_true", help="recompute samples instead of reusing the cached ones")
    grade.set_defaults(handler=run_grade)

    orientation = models.add_parser("orientation", help="upright/upside-down check of sagittal images (input check)")
    orientation.add_argument("--config", required=True, help="training YAML, e.g. configs/orientation/train.yaml")
    orientation.add_argument("--output", help="run folder (default: the config's output_dir)")
    orientation.add_argument("-o", "--export", metavar="BUNDLE_DIR", help="write the model bundle here")
    orientation.add_argument("--fresh", action="store_true", help="read the pictures again instead of the cached ones")
    orientation.set_defaults(handler=run_orientation)


def run_seg(args: argparse.Namespace) -> int:
    from modic.segmentation.train import load_train_config, train

    overrides = {}
    if args.lumbar_seg:
        overrides["data.lumbar_seg"] = args.lumbar_seg
    if args.epochs:
        overrides["training.epochs"] = args.epochs
    config = load_train_config(args.config, overrides=overrides)
    result = train(config, output_dir=args.output, device=args.device, export_bundle=args.export)
    print(json.dumps(result, indent=2))
    return 0


def run_grade(args: argparse.Namespace) -> int:
    from modic.classification.training import train_grade

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
