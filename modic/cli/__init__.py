"""The ``modic`` command line.

Each subcommand lives in its own module under :mod:`modic.cli` and exposes
``add_parser(subparsers)``, which registers the parser and sets ``handler``.
Errors the user can act on print one line and exit 1 (2 for usage errors);
tracebacks appear only with ``--debug``. Python warnings of the libraries
(pydicom on odd header values, torch, MONAI) are shown only with ``--debug``
too: modic reports what matters about the input itself, in its own words.

SIGTERM (``timeout``, ``docker stop``, SLURM) stops a command as Ctrl-C does:
unfinished outputs are removed, exit code 143 (130 for Ctrl-C). A closed
standard output (``modic inspect STUDY | head -1``) ends the command quietly
with exit code 141, as for other Unix tools.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from modic import __version__
from modic.errors import EXIT_FAILURE, EXIT_USAGE, ModicError

COMMAND_MODULES: tuple[str, ...] = (
    "analyze",
    "inspect",
    "synth",
    "train",
    "evaluate",
    "candidacy",
    "demo",
    "batch",
)

log = logging.getLogger("modic")


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that it unwinds (and cleans up) as Ctrl-C does."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modic",
        description="Modic changes on sagittal lumbar spine MRI. Research use only, not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"modic {__version__}")
    _add_global_flags(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"modic.cli.{name}").add_parser(subparsers)
    for command in _subcommands(parser):
        _add_global_flags(command, default=argparse.SUPPRESS)
    return parser


def _add_global_flags(parser: argparse.ArgumentParser, *, default: object) -> None:
    """``--debug`` and ``-q/--quiet``: before the command, or after it (``default`` SUPPRESS there, so that a flag
    given before the command is not reset by the command's parser)."""
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", default=default, help="only print warnings and errors")


def _subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command and sub-command parser under ``parser`` (``modic evaluate seg`` included)."""
    found = []
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public walk of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in dict.fromkeys(action.choices.values()):
                found.extend([child, *_subcommands(child)])
    return found


def _configure_logging(*, debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if debug else "%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(debug=args.debug, quiet=args.quiet)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.simplefilter("ignore")
            return _run(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except ModicError as exc:
        if args.debug:
            raise
        print(f"modic: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("modic: terminated (SIGTERM); unfinished outputs removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("modic: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 128 + signal.SIGPIPE
    except MemoryError:
        if args.debug:
            raise
        print("modic: error: out of memory; process fewer or smaller studies at a time", file=sys.stderr)
        return EXIT_FAILURE
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - last resort (also Rust extensions' PanicException), no traceback
        if args.debug:
            raise
        detail = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"modic: internal error: {type(exc).__name__}: {detail} "
            "(rerun with --debug for the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _silence_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null so that Python's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)
