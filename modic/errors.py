"""Errors that the command line turns into one readable line and an exit code.

Every error the user can act on is a :class:`ModicError`; its message says what
is wrong (quoting the offending value) and what to do. Anything else that
escapes is an internal error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class ModicError(Exception):
    """A failure the user can understand and act on (exit code 1)."""

    exit_code = EXIT_FAILURE


class UsageError(ModicError):
    """The command was called wrongly: bad option combination or value (exit code 2)."""

    exit_code = EXIT_USAGE


class InputError(ModicError):
    """The input data (files, headers, pixel data) cannot be used."""


class SeriesSelectionError(InputError):
    """No suitable sagittal T1 or T2 series could be chosen from a study."""


class MissingCodecError(InputError):
    """Compressed pixel data needs a decoder that is not installed."""


class ConfigError(ModicError):
    """A configuration, policy or clinical file is invalid."""


class ModelError(ModicError):
    """A model bundle is missing, corrupt or incompatible."""


class AnalysisError(ModicError):
    """The images were read but the analysis could not complete (e.g. no spine found)."""


class OutputError(ModicError):
    """The outputs cannot be written (no permission, disk full, a file in the way)."""


class OutputFolderError(OutputError):
    """An output folder refused before any work, because writing it could fail or lose files.

    ``problem`` says what is wrong with ``folder``; ``remedy`` (a key of
    :data:`OUTPUT_REMEDIES`) names what the caller can change. The message
    says it in the terms of the Python API (``overwrite=True``); the command
    line says it in flags (``--overwrite``, ``-o``) and exits with the usage
    code (:func:`modic.cli.options.output_flags`).
    """

    def __init__(self, problem: str, *, remedy: str, folder: str) -> None:
        self.problem = problem
        self.remedy = remedy
        self.folder = folder
        super().__init__(f"{problem}; {OUTPUT_REMEDIES[remedy].format(folder=folder)}")


OUTPUT_REMEDIES = {
    "other": "pass another output folder",
    "overwrite": "pass another output folder, or overwrite=True to replace it",
    "foreign": "overwrite=True replaces only modic's own output folders: pass a new output folder, or move those "
    "files away",
    "outside_input": "pass an output folder outside the input (modic never writes into its input)",
    "new_name": "pass a new folder name, e.g. 'results'",
    "inside": "pass a new folder inside it, e.g. '{folder}/results'",
    "link_target": "pass the folder it points to, or a new folder",
    "wait": "wait for it to finish, or pass another output folder",
}
"""What the caller of the Python API can do about each kind of refused output folder."""


class SchemaError(ModicError):
    """A report file has an unknown or incompatible schema version."""
