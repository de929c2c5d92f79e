"""``modic candidacy REPORT.json --clinical patient.yaml``: basivertebral nerve ablation candidacy check.

Applies a candidacy policy (``--policy``: a shipped name in
``configs/candidacy/`` or a YAML file) to the Modic grades of a report.json
and the patient's clinical facts. Prints the verdict with every criterion and
its evidence (``--json``: the JSON result); ``-o`` also writes the JSON
atomically. Exits 0 whatever the verdict, 1 when a file is bad (report of
another schema version, invalid clinical or policy file), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from modic import atomic
from modic.cli.options import add_input, input_of
from modic.errors import UsageError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from modic.config import shipped_names

    parser = subparsers.add_parser(
        "candidacy",
        help="check basivertebral nerve ablation candidacy from a report.json and clinical facts",
        description=(
            "Evaluate a basivertebral nerve ablation candidacy policy on the Modic grades of a modic "
            "report.json and the patient's clinical facts (YAML, see configs/clinical_template.yaml). "
            "Prints eligible, not eligible or insufficient information, every criterion with its "
            "evidence, and the vertebral bodies to target. Research use only, not a medical device."
        ),
    )
    add_input(parser, "report", metavar="REPORT.json", help="report.json written by modic analyze")
    parser.add_argument("--clinical", required=True, type=Path, metavar="PATIENT.yaml", help="clinical facts YAML file")
    parser.add_argument(
        "--policy",
        default="default",
        metavar="NAME|FILE",
        help=f"policy name ({', '.join(shipped_names('candidacy'))}) or policy YAML file (default: default)",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="OUT.json", help="also write the JSON result here")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modic.candidacy import evaluate_candidacy, load_clinical, load_policy
    from modic.report.schema import read_report

    args.report = input_of(args, "report")
    if args.output is not None and args.output.exists():
        for given in (args.report, args.clinical, Path(args.policy)):
            if given.exists() and os.path.samefile(given, args.output):
                raise UsageError(f"-o '{args.output}' is the input '{given}'; choose another output file")
    report = read_report(args.report)
    clinical = load_clinical(args.clinical)
    policy = load_policy(args.policy)
    result = evaluate_candidacy(report, clinical, policy)
    document = json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        atomic.write_text(args.output, document)
    if args.json:
        print(document, end="")
    else:
        print(result.to_text())
    return 0
