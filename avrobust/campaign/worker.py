"""What runs in a campaign worker process (pool or Ray). This module imports nothing heavy, so
that a spawned worker applies the process settings (:func:`avrobust.runtime.apply`) before
torch and Open3D load."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from avrobust import runtime

if TYPE_CHECKING:
    from avrobust.campaign.records import JobOutcome


def run_json(spec: str) -> JobOutcome:
    """Run one job sent as JSON (the pool's task)."""
    from avrobust.campaign.runner import run_job
    from avrobust.scenario.campaign import Job

    job = Job.from_json(spec)
    if os.environ.get("AVROBUST_TEST_CRASH_JOB") == job.id:  # lets the tests kill a worker
        os._exit(3)
    return run_job(job)


def init_worker(threads: int, slot=None, workers: int = 1) -> None:
    """Set a worker process up: the process settings first (before torch loads), then its
    share of the threads and cores."""
    runtime.apply()
    _die_with_parent()
    import torch

    from avrobust.backends.embedded import set_threads

    torch.set_num_threads(threads)
    set_threads(threads)  # Open3D's casting otherwise uses every core in every worker
    if slot is not None and workers > 1 and hasattr(os, "sched_setaffinity"):
        # Give each worker its own share of the cores: Open3D's ray casting otherwise spreads
        # over every core in every worker and the workers thrash each other.
        with slot.get_lock():
            k = slot.value
            slot.value += 1
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= workers:
            per = len(cores) // workers
            start = (k % workers) * per
            os.sched_setaffinity(0, cores[start : start + per])


def _die_with_parent() -> None:
    """Ask the kernel to kill this worker when the process that started it dies (Linux), so a
    run killed with ``kill -9`` leaves no worker behind holding a gigabyte."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took: go now
        os._exit(1)


def ray_task(spec: str, threads: int) -> JobOutcome:
    """Run one job sent as JSON on a Ray worker, set up as a pool worker."""
    init_worker(threads)
    return run_json(spec)
