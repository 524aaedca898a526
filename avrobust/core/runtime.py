"""Process-wide settings that make tensor code fast on ordinary Linux machines.

glibc returns large freed blocks to the kernel (mmap threshold and heap trimming), so every
frame's multi-megabyte temporaries are page-faulted in again; on the machines we measured this
made element-wise tensor operations 5-9 times slower. Raising the thresholds keeps the memory in
the process. Set ``AVROBUST_NO_MALLOC_TUNING=1`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 32 * 1024 * 1024  # glibc's largest mmap threshold on 64-bit machines

_done = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; returns whether it applied."""
    global _done
    if _done or os.environ.get("AVROBUST_NO_MALLOC_TUNING") or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, 4 * _THRESHOLD) == 1
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    _done = ok
    return ok
