"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model``: one segmentation bundle for every volume, in place of the config's bundles."""
    parser.add_argument(
        "--model",
        help="segmentation bundle folder for every volume (default: the analysis config's bundles; "
        "shipped: spine_seg for every volume)",
    )
