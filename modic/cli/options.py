"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from modic.errors import OutputFolderError, UsageError

OUTPUT_FLAGS = {
    "other": "choose another -o",
    "overwrite": "choose another -o or add --overwrite",
    "foreign": "--overwrite replaces only modic's own output folders: choose a new -o, or move those files away",
    "outside_input": "choose an -o outside the input (modic never writes into its input)",
    "new_name": "give a new folder name, e.g. -o results",
    "inside": "give a new folder inside it, e.g. -o {folder}/results",
    "link_target": "give the folder it points to, or a new folder",
    "wait": "wait for it to finish or choose another -o",
}
"""What the user of the command line can do about each kind of refused output folder, in flags."""


@contextlib.contextmanager
def output_flags() -> Iterator[None]:
    """Say a refused output folder (:class:`OutputFolderError`) in flags, as a usage error (exit code 2)."""
    try:
        yield
    except OutputFolderError as exc:
        raise UsageError(f"{exc.problem}; {OUTPUT_FLAGS[exc.remedy].format(folder=exc.folder)}") from None


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """``--model``: one segmentation bundle for every volume, in place of the config's bundles."""
    parser.add_argument(
        "--model",
        help="segmentation bundle folder for every volume (default: the shipped spine_seg, and spine_seg_thin "
        "for volumes of slices at most segmentation.thin_slice_max_spacing_mm apart)",
    )
