"""Process-wide settings, applied by an explicit call to :func:`apply` (the command line, the
campaign and dataset workers, the demo and the benchmarks make it; importing avrobust changes
nothing in the process): a faster allocator for tensor code on Linux, OpenMP threads that stop
spinning sooner, and a shorter start-up (Open3D without its Plotly drawing until it is used).
This module imports nothing of avrobust, so it can run before the heavy imports. A notebook
that wants the same speed calls ``avrobust.runtime.apply()`` before importing torch.

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


def apply() -> dict[str, bool]:
    """Apply every process setting of this module (each can be switched off by its
    environment variable); returns which are in force. Call it first thing in a process: the
    OpenMP setting applies only before torch is imported, the Open3D one before open3d is."""
    return {
        "allocator": tune_allocator(),
        "openmp_spin": shorten_openmp_spin(),
        "lazy_plotly": defer_open3d_plotly(),
    }


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


SPIN_COUNT = "30000"


def shorten_openmp_spin() -> bool:
    """Let PyTorch's idle OpenMP threads spin for about a millisecond instead of several
    (``GOMP_SPINCOUNT``), so that they leave the cores to Open3D's ray casting, which runs on
    threads of its own (TBB) right after tensor code in every frame. On two cores a camera
    cast took 19 ms just after tensor operations and 15 ms with this setting; tensor code
    itself did not slow down (its threads are still woken within the spin).

    libgomp reads the variable once, when it loads with PyTorch: this applies only when
    :func:`apply` runs before torch is imported (the command line does; its spawned workers
    inherit the variable), and never
    overrides a value the user set. Set ``AVROBUST_NO_SPIN_TUNING=1`` to leave it alone.
    Returns whether the setting is in force."""
    if os.environ.get("AVROBUST_NO_SPIN_TUNING"):
        return False
    if "GOMP_SPINCOUNT" in os.environ:
        return os.environ["GOMP_SPINCOUNT"] == SPIN_COUNT
    if "torch" in sys.modules:  # libgomp has read its environment already
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True


_PLOTLY = "open3d.visualization.draw_plotly"


def defer_open3d_plotly() -> bool:
    """Make ``import open3d`` skip importing Plotly and Dash until one of Open3D's Plotly
    drawing functions is called.

    Open3D's package imports ``open3d.visualization.draw_plotly`` at start-up, which imports
    Dash and Plotly: 1.4 of the 2.6 s ``import open3d`` takes here, paid by every command and
    every campaign worker process although we never draw with Plotly. A stand-in module takes
    its place in ``sys.modules``; calling any of its functions imports the real one. Set
    ``AVROBUST_NO_LAZY_PLOTLY=1`` to leave Open3D's start-up alone. Returns whether it applied
    (not when Open3D is already imported)."""
    import importlib
    import types

    if os.environ.get("AVROBUST_NO_LAZY_PLOTLY") or "open3d" in sys.modules:
        return False
    if _PLOTLY in sys.modules:
        return True

    def real():
        if getattr(sys.modules.get(_PLOTLY), "_avrobust_stand_in", False):
            del sys.modules[_PLOTLY]
        return importlib.import_module(_PLOTLY)

    def deferred(name: str):
        def call(*args, **kwargs):
            return getattr(real(), name)(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = f"Open3D's {name}; imports Plotly and Dash on first use."
        return call

    stand_in = types.ModuleType(_PLOTLY, "Stand-in: Open3D's Plotly drawing, imported on use.")
    stand_in._avrobust_stand_in = True
    for name in ("get_plotly_fig", "draw_plotly", "draw_plotly_server"):
        setattr(stand_in, name, deferred(name))

    def other(name: str):
        if name.startswith("__"):  # the import machinery probes __path__, __spec__, ...
            raise AttributeError(name)
        return getattr(real(), name)

    stand_in.__getattr__ = other
    sys.modules[_PLOTLY] = stand_in
    return True
