"""Where jobs run: in this process, in a local process pool, or on a Ray cluster.

Jobs travel as JSON and come back as :class:`JobOutcome` objects of plain data; the caller
stores each outcome as it arrives (only the calling process writes to the results store). Every
executor yields the same outcomes for the same jobs, because a job's randomness comes from its
own seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from avrobust.campaign.records import JobOutcome
from avrobust.campaign.runner import run_job
from avrobust.campaign.worker import init_worker, ray_task, run_json
from avrobust.core.errors import ConfigError, DependencyError
from avrobust.scenario.campaign import Job


def run_local(jobs: list[Job], workers: int = 1) -> Iterator[JobOutcome]:
    """Outcomes as jobs finish; ``workers > 1`` uses a pool of spawned processes. A worker that
    dies (a crash, the memory killer) breaks the whole pool, so the jobs that were in flight are
    run again one at a time: the one that dies alone is failed, the others finish."""
    if workers <= 1:
        for job in jobs:
            yield run_job(job)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)

    ctx = get_context("spawn")

    def new_pool(n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=n,
            mp_context=ctx,
            initializer=init_worker,
            initargs=(threads, ctx.Value("i", 0), n),
        )

    pool = new_pool(workers)
    pending: dict[Future, Job] = {}
    queue = list(jobs)
    try:
        # Keep at most two jobs per worker queued, so an interrupt loses little.
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                job = queue.pop(0)
                pending[pool.submit(run_json, job.to_json())] = job
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            suspects = []
            for fut in done:
                job = pending.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    suspects.append(job)
            if suspects:
                suspects += list(pending.values())
                pending.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                yield from _isolate(suspects, new_pool)
                pool = new_pool(workers)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=False, cancel_futures=True)


def _isolate(jobs: list[Job], new_pool) -> Iterator[JobOutcome]:
    """Run each job alone in a fresh one-worker pool; a job whose worker dies is failed."""
    for job in jobs:
        pool = new_pool(1)
        try:
            yield pool.submit(run_json, job.to_json()).result()
        except BrokenProcessPool as exc:
            yield JobOutcome(
                job.id, error=f"WorkerCrashed: the worker process running this job died ({exc})"
            )
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def run_ray(
    jobs: list[Job], workers: int | None = None, address: str | None = None, carla_servers: int = 0
) -> Iterator[JobOutcome]:
    """Outcomes from Ray tasks. Without ``address`` a local Ray starts with ``workers`` CPUs.
    CARLA jobs ask for one ``carla_server`` resource each, so a cluster runs as many at once as
    it declares servers."""
    try:
        import ray
    except ImportError:
        raise DependencyError(
            "the Ray executor needs ray: pip install 'avrobust[ray]'", field="--executor"
        ) from None
    started_here = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            resources = {"carla_server": carla_servers} if carla_servers else None
            ray.init(num_cpus=workers or os.cpu_count(), resources=resources, **kwargs)
        started_here = True
    try:
        threads = 1 if (workers or 1) > 1 else max(1, os.cpu_count() or 1)
        remote = ray.remote(num_cpus=1)(ray_task)
        refs = []
        for job in jobs:
            opts = {"resources": {"carla_server": 1}} if job.backend == "carla" else {}
            refs.append(remote.options(**opts).remote(job.to_json(), threads))
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


def run_jobs(
    jobs: list[Job],
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    carla_servers: int = 0,
) -> Iterator[JobOutcome]:
    if executor == "local":
        return run_local(jobs, workers)
    if executor == "ray":
        return run_ray(jobs, workers, address, carla_servers)
    raise ConfigError(f"unknown executor {executor!r}", field="--executor", allowed="local, ray")
