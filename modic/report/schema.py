"""Name and version of the report.json schema, and reading a report back.

Kept free of heavy imports so that commands that only read reports
(``modic candidacy``, batch summaries) start quickly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modic import __version__
from modic.errors import SchemaError

SCHEMA_NAME = "modic-report"
SCHEMA_VERSION = "1.7"


def read_report(path: str | Path) -> dict[str, Any]:
    """Load a report.json, refusing files of another schema or major version."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise SchemaError(f"report '{path}' is not a regular file (a folder, pipe or device); give a modic report.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"report '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SchemaError(f"report '{path}' is not readable JSON ({type(exc).__name__}); give a modic report.json") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
        raise SchemaError(f"'{path}' is not a modic report (schema {data.get('schema') if isinstance(data, dict) else None!r})")
    version = str(data.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise SchemaError(
            f"report '{path}' has schema version {version!r}; this modic {__version__} reads {SCHEMA_VERSION.split('.')[0]}.x: "
            "re-run modic analyze with this version"
        )
    return data
