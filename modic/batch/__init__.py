"""Batch inference for research cohorts: ``modic batch ROOT -o OUT``.

Every study under ROOT (or listed in a cohort CSV) is analysed exactly as
``modic analyze`` does and written to ``OUT/<study key>/``; ``manifest.jsonl``
records every attempt and ``summary.csv`` the cohort. Runs are resumable,
parallel on one machine (process pool, or the cross-study GPU pipeline) or
distributed over a Dask cluster. See ``docs/batch.md``.
"""

from modic.batch.runner import BatchOptions, BatchResult, run_batch
from modic.batch.sources import StudySource, discover, read_cohort_csv

__all__ = ["BatchOptions", "BatchResult", "StudySource", "discover", "read_cohort_csv", "run_batch"]
