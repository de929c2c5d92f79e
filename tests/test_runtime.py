"""Process-wide allocator tuning (``runtime`` in configs/analysis.yaml)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from modic.runtime import apply_runtime_settings, tune_allocator
from modic.settings import RuntimeSettings


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists only on Linux")
def test_allocator_is_tuned_on_linux_and_arrays_still_work() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert tune_allocator(keep_freed_mb=256)
    for size in (1_000, 3_000_000, 6_000_000):  # 8 kB to 48 MB: heap and mapped allocations
        array = np.arange(size, dtype=np.int64)
        assert int(array.sum()) == size * (size - 1) // 2
        del array


def test_zero_keeps_the_allocator_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr("modic.runtime.tune_allocator", lambda *, keep_freed_mb: calls.append(keep_freed_mb))
    apply_runtime_settings(RuntimeSettings(keep_freed_memory_mb=0))
    apply_runtime_settings(RuntimeSettings(keep_freed_memory_mb=512))
    assert calls == [512]
