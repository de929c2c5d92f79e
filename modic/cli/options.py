"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from pathlib import Path

from modic.classification.methods import METHODS
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
    """``--model``: one segmentation bundle for every volume, in place of the shipped ones."""
    parser.add_argument(
        "--model",
        help="segmentation model for every image: a bundle folder or a shipped name (default: spine_seg, and "
        "spine_seg_thin for images of thin slices, e.g. 3D T2 SPACE)",
    )


def add_method_option(parser: argparse.ArgumentParser) -> None:
    """``--method``: the grading method, in place of the analysis config's."""
    parser.add_argument(
        "--method",
        choices=METHODS,
        help="how endplates are graded: rules (signal thresholds), learned (a model of the signal features) or "
        "patch (a small network on image patches); default: the analysis config's, rules as shipped",
    )


def add_input(parser: argparse.ArgumentParser, name: str, *, metavar: str, help: str, required: bool = True) -> None:
    """The one input of a command, given as the positional ``name`` or as ``-i/--input`` (:func:`input_of`)."""
    _add_either(parser, name, flags=("-i", "--input"), metavar=metavar, help=help, required=required)


def add_output(parser: argparse.ArgumentParser, name: str, *, metavar: str, help: str) -> None:
    """The output folder of a command, given as the positional ``name`` or as ``-o/--output`` (:func:`output_of`)."""
    _add_either(parser, name, flags=("-o", "--output"), metavar=metavar, help=help, required=True)


def input_of(args: argparse.Namespace, name: str) -> Path | None:
    """The input given as the positional ``name`` or with ``-i``; a usage error when given twice or (if required) not at all."""
    return _either(args, name, flag="-i", what="input")


def output_of(args: argparse.Namespace, name: str) -> Path:
    """The output folder given as the positional ``name`` or with ``-o``; a usage error when given twice or not at all."""
    value = _either(args, name, flag="-o", what="output folder")
    assert value is not None
    return value


def _add_either(
    parser: argparse.ArgumentParser, name: str, *, flags: tuple[str, str], metavar: str, help: str, required: bool
) -> None:
    parser.add_argument(name, nargs="?", type=Path, metavar=metavar, help=f"{help} (or give it with {flags[0]})")
    parser.add_argument(*flags, dest=f"{name}_flag", type=Path, metavar=metavar, help=help)
    parser.set_defaults(**{f"{name}_required": required})


def _either(args: argparse.Namespace, name: str, *, flag: str, what: str) -> Path | None:
    positional, given = getattr(args, name), getattr(args, f"{name}_flag")
    if positional is not None and given is not None:
        raise UsageError(f"the {what} is given twice ('{positional}' and {flag} '{given}'); give it once")
    value = positional if positional is not None else given
    if value is None and getattr(args, f"{name}_required"):
        raise UsageError(f"give the {what} {name.upper()} (as an argument or with {flag})")
    return value
