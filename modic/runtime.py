"""Process-wide tuning applied when the models are loaded (see ``runtime`` in ``configs/analysis.yaml``).

glibc serves each allocation above a dynamic threshold (at most 32 MiB) with
fresh pages from the kernel and returns them on release, so every large
array of a study (network activations, probabilities, label maps) is paid
again in page faults. On virtual machines a page fault is expensive: on the
benchmark machine (``docs/benchmarks.md``) a third of a study's CPU time was
kernel time. Serving allocations up to 32 MiB from the heap and keeping
freed memory for reuse removes most of those faults; peak memory is
unchanged, but the process keeps up to the trim threshold after a study.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import TYPE_CHECKING

from modic.errors import ConfigError

if TYPE_CHECKING:
    from modic.settings import RuntimeSettings

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_TOP_PAD = 64 * 1024 * 1024
"""Extra heap requested from the kernel each time the heap grows (untouched pages cost nothing)."""
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
"""The largest value glibc accepts for M_MMAP_THRESHOLD on 64-bit systems."""


def tune_allocator(*, keep_freed_mb: int) -> bool:
    """Serve allocations up to 32 MiB from the heap, grow it in 64 MiB steps, keep ``keep_freed_mb`` MiB freed.

    Only on Linux with glibc (elsewhere nothing changes). Returns whether the settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # no C library found, or one without mallopt (musl)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
    applied &= mallopt(_M_TRIM_THRESHOLD, int(keep_freed_mb) * 1024 * 1024)
    applied &= mallopt(_M_TOP_PAD, _TOP_PAD)
    return bool(applied)


def apply_runtime_settings(runtime: RuntimeSettings) -> None:
    """Apply the ``runtime`` settings (``configs/analysis.yaml``; ``keep_freed_memory_mb: 0`` changes nothing)."""
    if runtime.keep_freed_memory_mb:
        tune_allocator(keep_freed_mb=int(runtime.keep_freed_memory_mb))


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``; others are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but no CUDA GPU is available; use device 'cpu'")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device '{device}' is not one of auto, cpu, cuda, cuda:N")
    return device
