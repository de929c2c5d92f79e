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


class SchemaError(ModicError):
    """A report file has an unknown or incompatible schema version."""
