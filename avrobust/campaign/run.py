"""``avrobust run``: expand a campaign, store its jobs, run the unfinished ones with retries,
and show progress. Interrupting (Ctrl-C) keeps every finished job; rerunning resumes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from avrobust.backends.factory import make_backend
from avrobust.campaign import registry
from avrobust.campaign.executors import run_jobs
from avrobust.campaign.lock import run_lock
from avrobust.campaign.records import JobOutcome
from avrobust.campaign.store import ResultsStore
from avrobust.core.errors import ConfigError
from avrobust.scenario.campaign import AttackRef, Campaign, Job, expand, load_campaign


@dataclass
class RunSummary:
    run_dir: Path
    total: int
    skipped: int
    done: int
    failed: int
    frames: int


def plan(campaign_path: str | Path) -> list[Job]:
    """The jobs a campaign file expands to, without running anything; an unknown model, attack
    or defence name, or a parameter its factory does not take, is refused here."""
    path = Path(campaign_path)
    campaign = with_controls(load_campaign(path), path)
    check_components(campaign, path)
    return expand(campaign, path.parent)


@dataclass
class WidthPlan:
    """How many drive-bys a campaign's cells need for its ``target_width``: ``needed`` for a
    95% Wilson interval at most ``target`` wide at the worst case (a 50% rate); ``per_cell``
    the fewest the campaign gives one model x attack x defence cell; ``widest`` the interval
    width those give at 50%."""

    target: float
    needed: int
    per_cell: int
    widest: float

    @property
    def enough(self) -> bool:
        return self.per_cell >= self.needed


def width_plan(jobs: list[Job], target: float) -> WidthPlan:
    """:class:`WidthPlan` of ``jobs``; each job is one drive-by of its cell."""
    from collections import Counter

    from avrobust.core.stats import trials_for_width, width

    cells = Counter(
        (json.dumps(j.model, sort_keys=True), json.dumps(j.attack, sort_keys=True),
         json.dumps(j.defence, sort_keys=True))
        for j in jobs
    )  # fmt: skip
    per_cell = min(cells.values()) if cells else 0
    widest = width(per_cell // 2, per_cell) if per_cell else 1.0
    return WidthPlan(target, trials_for_width(target), per_cell, widest)


def with_controls(campaign: Campaign, path: Path | None = None) -> Campaign:
    """The campaign with its ``controls`` added as attacks: for every attack that has a listed
    control, the same attack reference with ``control`` set, right after it. A listed control
    that no attack of the campaign has is refused."""
    if not campaign.controls:
        return campaign
    attacks: list[AttackRef] = []
    used: set[str] = set()
    for ref in campaign.attacks:
        attacks.append(ref)
        if ref.control is not None:
            continue
        for c in campaign.controls:
            if c in registry.controls_of(ref.name):
                used.add(c)
                twin = ref.model_copy(update={"control": c})
                if twin not in campaign.attacks:
                    attacks.append(twin)
    for i, c in enumerate(campaign.controls):
        if c not in used:
            known = sorted({k for r in campaign.attacks for k in registry.controls_of(r.name)})
            raise ConfigError(
                f"no attack of this campaign has the control {c!r}",
                file=path,
                field=f"controls[{i}]",
                allowed=", ".join(known) or "none (no attack here has a control)",
            )
    return campaign.model_copy(update={"attacks": attacks})


def check_components(campaign: Campaign, path: Path | None = None) -> None:
    """Every component the campaign names exists and takes the parameters given."""
    for kind, refs in (
        ("model", campaign.models),
        ("attack", campaign.attacks),
        ("defence", campaign.defences),
    ):
        for i, ref in enumerate(refs):
            registry.check(kind, ref.model_dump(), path, f"{kind}s[{i}]")


def run_campaign(
    campaign_path: str | Path,
    out: str | Path,
    executor: str = "local",
    workers: int = 1,
    address: str | None = None,
    retries: int = 0,
    backend: str | None = None,
    timeout: float | None = None,
    on_outcome: Callable[[JobOutcome, Job], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    attacks: list[dict] | None = None,
    controls: list[str] | None = None,
) -> RunSummary:
    """Run a campaign into ``out`` (a run directory), resuming where it stopped.

    Args:
        backend: overrides the campaign's backend. timeout: overrides its per-job limit.
        retries: how many more times a failing job is tried within this run.
        on_start: called with (jobs to run, jobs already done). on_outcome: after each job.
        attacks: replaces the campaign's attacks (``avrobust attack evaluate --campaign``);
            the stored campaign text is then the campaign as run. controls: replaces its
            ``controls``.
    """
    path = Path(campaign_path)
    campaign = load_campaign(path)
    text = path.read_text(encoding="utf-8")
    updates: dict = {}
    if attacks is not None:
        updates["attacks"] = [AttackRef.model_validate(a) for a in attacks]
    if controls is not None:
        updates["controls"] = controls
    if backend is not None:
        updates["backend"] = backend
    if timeout is not None:
        updates["timeout"] = timeout
    if updates:
        campaign = campaign.model_copy(update=updates)
    if attacks is not None or controls is not None:
        import yaml

        text = f"# {path}, its attacks replaced by avrobust attack evaluate\n" + yaml.safe_dump(
            campaign.model_dump(mode="json", exclude_defaults=True), sort_keys=False
        )
    campaign = with_controls(campaign, path)
    check_components(campaign, path)
    # An unavailable backend stops here, not in every job.
    if campaign.backend == "carla":
        from avrobust.backends.carla.backend import check_servers

        check_servers(campaign.carla.servers, campaign.carla.timeout)
    else:
        make_backend(campaign.backend).close()
    jobs = expand(campaign, path.parent)
    with run_lock(out), ResultsStore(out) as store:
        store.register(campaign.name, text, jobs)
        # Run this expansion's jobs (its timeout and backend), skipping the finished ones.
        unfinished = {j.id for j in store.pending([j.id for j in jobs])}
        todo = [j for j in jobs if j.id in unfinished]
        skipped = len(jobs) - len(todo)
        if on_start:
            on_start(len(todo), skipped)
        done = failed = frames = 0
        attempts: dict[str, int] = {}
        by_id = {j.id: j for j in todo}
        queue = todo
        carla = len(campaign.carla.servers) if campaign.backend == "carla" else 0
        while queue:
            retry: list[Job] = []
            for outcome in run_jobs(queue, executor, workers, address, carla):
                job = by_id[outcome.job_id]
                attempts[job.id] = attempts.get(job.id, 0) + 1
                if outcome.error is not None and attempts[job.id] <= retries:
                    retry.append(job)
                    continue
                store.record(outcome, attempts=attempts[job.id])
                if outcome.error is None:
                    done += 1
                    frames += outcome.num_frames
                else:
                    failed += 1
                if on_outcome:
                    on_outcome(outcome, job)
            queue = retry
    return RunSummary(Path(out), len(jobs), skipped, done, failed, frames)
