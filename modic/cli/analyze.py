"""``modic analyze`` (a study) and ``modic analyze-slice`` (one sagittal T1/T2 slice pair)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from modic import RESEARCH_NOTICE
from modic.cli.options import add_input, add_method_option, add_model_option, input_of, output_flags
from modic.errors import UsageError
from modic.settings import AnalysisSettings, load_settings

log = logging.getLogger("modic")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    study = subparsers.add_parser(
        "analyze",
        help="analyse one study (DICOM folder or T1/T2 files)",
        description=(
            "Find the vertebrae, discs and endplates of one sagittal lumbar spine MRI study, grade the Modic change "
            "of every endplate and write the report (report.json, levels.csv, pictures, report.html, NIfTI label "
            "maps and, for DICOM input, DICOM SEG and SR) into a new output folder. Research use only."
        ),
    )
    add_input(study, "study", metavar="STUDY", help="DICOM study folder (any layout)", required=False)
    study.add_argument("--t1", type=Path, help="T1 NIfTI/MHA file instead of a DICOM folder")
    study.add_argument("--t2", type=Path, help="T2 NIfTI/MHA file instead of a DICOM folder")
    study.add_argument("--t1-uid", help="SeriesInstanceUID of the T1 to use (overrides the automatic choice)")
    study.add_argument("--t2-uid", help="SeriesInstanceUID of the T2 to use")
    _outputs(study)
    study.set_defaults(handler=run_study)

    single = subparsers.add_parser(
        "analyze-slice",
        help="analyse one sagittal T1/T2 slice pair (PNG, DICOM or NIfTI)",
        description=(
            "Grade the Modic changes on one mid-sagittal T1/T2 slice pair (pictures or single-slice files) and "
            "write the same report as 'modic analyze'. Research use only."
        ),
    )
    single.add_argument("--t1", type=Path, help="T1 slice (PNG/JPEG/TIFF: head at the top, anterior on the left)")
    single.add_argument("--t2", type=Path, help="T2 slice of the same position")
    single.add_argument("--spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"),
                        help="pixel spacing of the T1 (required for PNG/JPEG/TIFF)")
    single.add_argument("--t2-spacing", nargs=2, type=float, metavar=("ROW_MM", "COL_MM"),
                        help="pixel spacing of the T2 when it differs from the T1's")
    _outputs(single)
    single.set_defaults(handler=run_slice)


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (created atomically)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--clinical", type=Path, help="clinical facts YAML: also run the ablation candidacy check")
    parser.add_argument("--policy", default="default", help="candidacy policy name in configs/candidacy/ or a YAML file")
    parser.add_argument("--config", type=Path,
                        help="YAML with only the settings to change (thresholds, reading limits, series choice), "
                        "merged onto the shipped ones in configs/")
    add_model_option(parser)
    add_method_option(parser)
    parser.add_argument("--keep-identifiers", action="store_true",
                        help="keep patient identifiers in report.json (off by default)")
    parser.add_argument("--no-dicom", action="store_true", help="do not write DICOM SEG and SR")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder that modic wrote (never one holding other files)")


def run_study(args: argparse.Namespace) -> int:
    from modic.io.study import load_study

    args.study = input_of(args, "study")
    if args.study is None and args.t1 is None and args.t2 is None:
        raise UsageError("give a DICOM study folder, or --t1/--t2 files")
    output = _checked_output(args)
    settings = _settings(args)
    images = load_study(
        args.study, t1=args.t1, t2=args.t2, t1_uid=args.t1_uid, t2_uid=args.t2_uid,
        config=settings.io, selection=settings.series_selection, checks=settings.input_checks,
    )
    return _analyze_and_write(images, args, output=output, config=settings)


def run_slice(args: argparse.Namespace) -> int:
    from modic.io.slice_pair import load_slice_pair

    output = _checked_output(args)
    settings = _settings(args)
    images = load_slice_pair(
        t1=args.t1,
        t2=args.t2,
        spacing=tuple(args.spacing) if args.spacing else None,
        t2_spacing=tuple(args.t2_spacing) if args.t2_spacing else None,
        config=settings.io,
    )
    return _analyze_and_write(images, args, output=output, config=settings)


def _checked_output(args: argparse.Namespace) -> Path:
    """The output folder as an absolute path, refused before any work when writing it could fail or lose files."""
    from modic.report.writer import check_output_folder

    inputs = [getattr(args, name, None) for name in ("study", "t1", "t2", "clinical", "config")]
    with output_flags():
        return check_output_folder(args.output, overwrite=args.overwrite, inputs=inputs)


def _settings(args: argparse.Namespace) -> AnalysisSettings:
    """The shipped settings with ``--config`` merged on top and ``--method`` in place of the grading method."""
    from modic.classification.factory import with_method

    return with_method(load_settings(args.config), args.method)


def _analyze_and_write(images: Any, args: argparse.Namespace, *, output: Path, config: AnalysisSettings) -> int:
    from modic.pipeline import Models, analyze_images
    from modic.report.writer import write_report

    clinical = policy = None
    if args.clinical:
        from modic.candidacy import load_clinical, load_policy

        clinical, policy = load_clinical(args.clinical), load_policy(args.policy)
    models = Models.load(config, device=args.device, bundle=args.model)
    analysis = analyze_images(images, models=models, config=config)
    candidacy = None
    if clinical is not None:
        from modic.candidacy import evaluate_candidacy
        from modic.report.json_report import build_report

        draft = build_report(analysis, keep_identifiers=args.keep_identifiers)
        candidacy = evaluate_candidacy(draft, clinical, policy).to_dict()
    with output_flags():
        report = write_report(
            analysis, output, overwrite=args.overwrite, keep_identifiers=args.keep_identifiers,
            dicom=not args.no_dicom, candidacy=candidacy,
        )
    print(summary_text(report))
    print(f"outputs: {args.output}")
    return 0


def summary_text(report: dict[str, Any]) -> str:
    """The few lines a user reads in the terminal."""
    lines = [f"study {report['study']['key']}"]
    for level in report["levels"]:
        endplates = ", ".join(
            f"{e['endplate']}: {e['mixed'] or e['modic_type']} ({e['confidence']:.2f})" for e in level["endplates"]
        )
        lines.append(f"  {level['level']:<6} Modic {level['mixed'] or level['modic_type']}   [{endplates}]")
    for warning in report["warnings"]:
        if warning["severity"] == "warning":
            lines.append(f"  warning: {warning['message']}")
    candidacy = report.get("candidacy")
    if candidacy:
        lines.append(f"  candidacy ({candidacy.get('policy', {}).get('name', '?')}): {candidacy.get('verdict')}")
    lines.append(RESEARCH_NOTICE)
    return "\n".join(lines)
