"""Settings of ``modic batch`` (``configs/batch.yaml``; the ``batch`` section of the analysis settings)."""

from __future__ import annotations

from dataclasses import dataclass

from modic.settings.fields import positive


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """Limits of a cohort run."""

    study_timeout_s: float = positive()
