"""Progress of long loops: a bar on a terminal, plain log lines anywhere else.

Evaluations, training-data collection and study generation run for minutes,
often under ``nohup``, SLURM or CI where stderr is a file. A tqdm bar is
silent there (or floods the file with carriage returns), so off a terminal
the loop logs one line at most every ``every_s`` seconds, and one when it
ends: ``<desc>: 40/127 patients, 0m35s, ETA 1m16s``. A loop done within
``every_s`` logs nothing (reading one study's headers is not news). The
lines go to the ``modic.progress`` logger (shown by the CLI unless
``--quiet``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("modic.progress")


def progress(
    items: Iterable[T],
    *,
    desc: str,
    unit: str = "item",
    total: int | None = None,
    enabled: bool = True,
    every_s: float = 10.0,
    transient: bool = False,
) -> Iterator[T]:
    """Yield ``items``, showing how far the loop has come.

    Args:
        items: what to iterate over.
        desc: what is being done, e.g. ``"patients"``.
        unit: what one item is, e.g. ``"patient"`` or ``"study"`` (the lines use its plural).
        total: number of items when ``items`` has no ``len``.
        enabled: False shows nothing (callers that report progress themselves).
        every_s: shortest time between two log lines off a terminal.
        transient: the terminal bar disappears when done (short sub-steps).
    """
    if every_s <= 0:
        raise ValueError(f"every_s must be positive, got {every_s!r}")
    if not enabled:
        return iter(items)
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from tqdm import tqdm

        return iter(tqdm(items, desc=desc, unit=unit, total=total, leave=not transient))
    return _logged(items, desc=desc, unit=unit, total=total, every_s=every_s)


def _logged(items: Iterable[T], *, desc: str, unit: str, total: int | None, every_s: float) -> Iterator[T]:
    started = last = time.monotonic()
    done = 0
    logged_at = 0  # the count the last line showed; 0: no line yet
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            log.info(_line(desc, unit, done, total, now - started))
            last, logged_at = now, done
    if 0 < logged_at < done:
        log.info(_line(desc, unit, done, total, time.monotonic() - started))


def _line(desc: str, unit: str, done: int, total: int | None, elapsed: float) -> str:
    count = f"{done}/{total}" if total is not None else str(done)
    plural = f"{unit[:-1]}ies" if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou") else f"{unit}s"
    line = f"{desc}: {count} {plural}, {duration(elapsed)}"
    if total is not None and 0 < done < total:
        line += f", ETA {duration(elapsed / done * (total - done))}"
    return line


def duration(seconds: float) -> str:
    """``1h02m`` or ``3m05s``: a time span as progress lines and ETAs show it."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
