"""``modic synth OUT``: write synthetic lumbar spine MRI studies with their ground truth.

Study ``i`` of ``--n`` uses seed ``--seed + i`` and is written atomically to
``OUT/<study key>/`` (DICOM, NIfTI and truth.json); existing study folders are
skipped unless ``--overwrite``, so an interrupted run can simply be repeated.
"""

from __future__ import annotations

import argparse
import logging

from modic.cli.options import add_output, output_of
from modic.errors import UsageError
from modic.progress import progress

log = logging.getLogger("modic.cli.synth")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from modic.config import shipped_names

    parser = subparsers.add_parser(
        "synth",
        help="write synthetic lumbar spine MRI studies (DICOM/NIfTI + truth.json)",
        description=(
            "Generate deterministic synthetic sagittal lumbar spine MRI studies with planted Modic changes "
            "and write each to OUT/<study key>/ with its ground truth."
        ),
    )
    add_output(parser, "out", metavar="OUT", help="output folder (created)")
    parser.add_argument("--n", type=int, default=1, help="number of studies (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first study; study i uses seed+i (default 0)")
    parser.add_argument(
        "--config",
        default="default",
        help=f"shipped synth config name ({', '.join(shipped_names('synth'))}) or a YAML file holding only the "
        "settings to change "
        "(merged over default, or over the shipped config it names in 'extends')",
    )
    parser.add_argument("--format", default="dicom,nifti", help="comma-separated: dicom, nifti (default both)")
    parser.add_argument(
        "--extra-series",
        default="",
        help="comma-separated extra DICOM series: stir, t2fs, axial, localizer, derived",
    )
    parser.add_argument(
        "--modic",
        default=None,
        help="Modic changes to plant in every study, e.g. 'L4 inferior:1,L5 superior:1/2' ('' for none); "
        "default: random placement from the config",
    )
    parser.add_argument("--transfer-syntax", default="explicit", help="explicit, rle, j2k or jpegls (default explicit)")
    parser.add_argument("--shuffle", action="store_true", help="PACS-export layout: nested folders, random names")
    parser.add_argument("--dicomdir", action="store_true", help="write a DICOM File-set with a DICOMDIR")
    parser.add_argument("--readme", action="store_true", help="add a non-DICOM README.txt among the DICOM files")
    parser.add_argument("--overwrite", action="store_true", help="replace existing study folders")
    parser.set_defaults(handler=run)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def run(args: argparse.Namespace) -> int:
    from modic.atomic import cannot_write, remove_stale_temporaries
    from modic.synth import generate_study, load_synth_settings, parse_modic, write_study
    from modic.synth.study import study_key
    from modic.synth.writer import resolve_transfer_syntax

    if args.n < 1:
        raise UsageError(f"--n {args.n} must be at least 1")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed} must be a non-negative integer")
    formats = _split(args.format)
    extra = _split(args.extra_series)
    config = load_synth_settings(args.config)
    modic = None if args.modic is None else parse_modic(args.modic)
    syntax = resolve_transfer_syntax(args.transfer_syntax)
    if "dicom" not in formats and (extra or args.shuffle or args.dicomdir or args.readme):
        raise UsageError("--extra-series, --shuffle, --dicomdir and --readme need 'dicom' in --format")
    out = output_of(args, "out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write(out, exc) from None
    removed = remove_stale_temporaries(out)
    if removed:
        log.info("removed %d unfinished study folder(s) left by an interrupted run", removed)
    written = skipped = 0
    seeds = range(args.seed, args.seed + args.n)
    for seed in progress(seeds, desc="synth", unit="study"):
        target = out / study_key(config, seed)
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        study = generate_study(seed=seed, config=config, modic=modic)
        write_study(
            study,
            target,
            formats=formats,
            extra_series=extra,
            transfer_syntax=syntax,
            shuffle_and_rename=args.shuffle,
            dicomdir=args.dicomdir,
            non_dicom_file=args.readme,
            overwrite=args.overwrite,
        )
        written += 1
    log.info("wrote %d stud%s to %s%s", written, "y" if written == 1 else "ies", out,
             f" ({skipped} existing skipped)" if skipped else "")
    return 0
