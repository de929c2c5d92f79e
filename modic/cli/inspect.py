"""``modic inspect STUDY``: list the series of a study folder and which T1/T2 modic would use.

Reads headers only (no pixel data). Prints one table per study (series
number, description, plane, weighting guess, slices, matrix, spacing and the
decision with its reason) and the chosen T1/T2; ``--json`` prints the same
with the full decision log. Exits 0 when every study has a T1 or a T2,
otherwise 1 with a one-line error.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from modic.cli.options import add_input, input_of
from modic.errors import SeriesSelectionError

if TYPE_CHECKING:
    from modic.io.series_select import Selection


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="list the series of a DICOM study folder and the T1/T2 modic would choose",
        description=(
            "Scan a DICOM study folder (headers only), classify every series (plane, weighting, "
            "localizer/derived) and show which sagittal T1 and T2 would be analysed, and why."
        ),
    )
    add_input(parser, "study", metavar="STUDY", help="DICOM study folder (any layout, DICOMDIR allowed)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON (decision log included)")
    parser.add_argument(
        "--t1-uid", metavar="UID", help="SeriesInstanceUID to use as T1 instead of the automatic choice"
    )
    parser.add_argument(
        "--t2-uid", metavar="UID", help="SeriesInstanceUID to use as T2 instead of the automatic choice"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modic.io.dicom_scan import scan_folder
    from modic.io.series_select import select_series
    from modic.io.study import scan_decision, single_study

    args.study = input_of(args, "study")
    scan = scan_folder(args.study)
    if not scan.studies:
        single_study(scan)
    overrides = {"t1": args.t1_uid, "t2": args.t2_uid}
    for role, uid in overrides.items():
        if uid and not any(study.get(uid) for study in scan.studies):
            available = ", ".join(
                f"{s.series_uid} (#{s.number} '{s.description}')" for study in scan.studies for s in study.series
            )
            raise SeriesSelectionError(
                f"--{role}-uid '{uid}' is not a series under '{args.study}'; available: {available}"
            )

    selections: list[Selection] = []
    for study in scan.studies:
        selections.append(
            select_series(
                study,
                t1_uid=args.t1_uid if args.t1_uid and study.get(args.t1_uid) else None,
                t2_uid=args.t2_uid if args.t2_uid and study.get(args.t2_uid) else None,
            )
        )

    if args.json:
        document = {
            "root": str(scan.root),
            "scan": scan_decision(scan),
            "studies": [_study_json(selection) for selection in selections],
        }
        print(json.dumps(document, indent=2))
    else:
        print(_text(scan_decision(scan), selections))
    for selection in selections:
        selection.require_any()
    return 0


def _study_json(selection: Selection) -> dict[str, Any]:
    study = selection.study
    series = [d for d in selection.decisions if d["event"] == "series"]
    return {
        "study_uid": study.study_uid,
        "study_date": study.study_date,
        "study_description": study.study_description,
        "series": series,
        "chosen": {
            role: (s.series_uid if (s := selection.chosen(role)) is not None else None) for role in ("t1", "t2")
        },
        "decisions": selection.decisions,
    }


def _text(scan: dict[str, Any], selections: list[Selection]) -> str:
    lines = [scan["message"]]
    headers = ("#", "Description", "Plane", "Weighting", "Slices", "Matrix", "Spacing (mm)", "Decision")
    for selection in selections:
        study = selection.study
        lines.append("")
        lines.append(f"Study {study.summary()}")
        rows = [headers]
        for d in (d for d in selection.decisions if d["event"] == "series"):
            rows.append(
                (
                    "" if d["series_number"] is None else str(d["series_number"]),
                    _clip(d["description"], 32),
                    d["plane"],
                    d["weighting"],
                    str(d["slices"]),
                    "x".join(str(n) for n in d["matrix"]) if d["matrix"] else "-",
                    _spacing(d),
                    _decision(d),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(headers) - 1)]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])
        for role in ("t1", "t2"):
            chosen = selection.chosen(role)
            if chosen is None:
                lines.append(f"Chosen {role.upper()}: none")
            else:
                lines.append(
                    f"Chosen {role.upper()}: series {chosen.number} '{chosen.description}' ({chosen.series_uid})"
                )
        lines.extend(
            f"Warning: {d['message']}"
            for d in selection.decisions
            if d["event"] != "series" and d["level"] == "warning"
        )
    return "\n".join(lines)


def _decision(d: dict[str, Any]) -> str:
    head = f"accepted {d['role'].upper()}" if d["status"] == "accepted" else "rejected"
    reasons = "; ".join(d["reasons"])
    text = f"{head}: {reasons}" if reasons else head
    if d["warnings"]:
        text += f" [{'; '.join(d['warnings'])}]"
    return text


def _spacing(d: dict[str, Any]) -> str:
    if not d["pixel_spacing_mm"]:
        return "-"
    parts = [f"{v:.3g}" for v in d["pixel_spacing_mm"]]
    if d["slice_spacing_mm"] is not None:
        parts.append(f"{d['slice_spacing_mm']:.3g}")
    return "x".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
