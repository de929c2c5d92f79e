"""Progress of long loops: plain log lines off a terminal, a bar on one, nothing when disabled."""

from __future__ import annotations

import io
import itertools
import logging

import pytest

import modic.progress as progress_module
from modic.progress import duration, progress


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every reading of the clock is 4 s after the previous one."""
    ticks = itertools.count(0.0, 4.0)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(ticks))


def test_off_a_terminal_a_long_loop_logs_counts_eta_and_the_end(clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modic.progress")
    seen = list(progress(range(5), desc="synthetic studies", unit="study", every_s=10.0))
    assert seen == [0, 1, 2, 3, 4]
    lines = [r.getMessage() for r in caplog.records if r.name == "modic.progress"]
    # start 0; after each study 4, 8, 12 (logged: 12 s since the last line), 16, 20; the end 24
    assert lines == ["synthetic studies: 3/5 studies, 0m12s, ETA 0m08s", "synthetic studies: 5/5 studies, 0m24s"]


def test_a_line_for_the_last_item_is_not_repeated_at_the_end(clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modic.progress")
    list(progress(range(3), desc="patients", unit="patient", every_s=12.0))
    # start 0; after each patient 4, 8, 12 (logged, and it is the last)
    assert [r.getMessage() for r in caplog.records if r.name == "modic.progress"] == [
        "patients: 3/3 patients, 0m12s"]


def test_a_loop_done_within_the_interval_logs_nothing(clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modic.progress")
    assert list(progress(iter("abc"), desc="reading DICOM headers", unit="file", every_s=60.0)) == ["a", "b", "c"]
    assert not [r for r in caplog.records if r.name == "modic.progress"]


def test_unknown_total_counts_without_eta(clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="modic.progress")
    list(progress((i for i in range(4)), desc="cases", unit="case", every_s=5.0))
    lines = [r.getMessage() for r in caplog.records if r.name == "modic.progress"]
    assert lines and all("/" not in line and "ETA" not in line for line in lines)
    assert lines[-1].startswith("cases: 4 cases, ")


def test_disabled_shows_nothing_and_a_terminal_gets_a_bar(
    clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="modic.progress")
    assert list(progress(range(3), desc="patients", unit="patient", enabled=False, every_s=1.0)) == [0, 1, 2]
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    assert list(progress(range(3), desc="patients", unit="patient", every_s=1.0)) == [0, 1, 2]
    assert not [r for r in caplog.records if r.name == "modic.progress"]
    assert "patients" in terminal.getvalue() and "3/3" in terminal.getvalue()


def test_interval_must_be_positive_and_durations_read_as_in_batch_lines() -> None:
    with pytest.raises(ValueError, match="every_s must be positive, got 0"):
        progress(range(3), desc="x", every_s=0)
    assert (duration(5), duration(125), duration(3725)) == ("0m05s", "2m05s", "1h02m")
