"""One run at a time in a run directory: ``avrobust run`` holds an exclusive advisory lock on
``RUN_DIR/run.lock`` while it runs jobs, so a second run on the same directory stops with a
message naming the first instead of running every job again beside it. The lock is the
kernel's (``flock``): it goes with the process, so a run killed with ``kill -9`` leaves nothing
to clean up and the next run resumes."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from avrobust.core.errors import ConfigError

LOCK_NAME = "run.lock"


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold the run directory's lock for the ``with`` block; a ConfigError naming the holder
    (its pid and start time, as it wrote them) when another process holds it."""
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise ConfigError(
                f"another avrobust run is using this run directory ({holder}); wait for it to "
                "finish or stop it, then run again to resume",
                file=run_dir,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0
        )
        yield path
    finally:
        os.close(fd)  # closing releases the lock
