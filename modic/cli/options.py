"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model``: one segmentation bundle for every volume, in place of the config's bundles."""
    parser.add_argument(
        "--model",
        help="segmentation bundle folder for every volume (default: the shipped spine_seg, and spine_seg_thin "
        "for volumes of slices at most segmentation.thin_slice_max_spacing_mm apart)",
    )
