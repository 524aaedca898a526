"""Closed-loop jobs: the scenario's world, the attack in it, the (defended) model as the car's
perception, the reference policy (or a user's) driving on what it reports, behind the
defence's fail-safe when it has one; the frames recorded
as an open-loop job records them, and the criteria scored on what the car did. Model ``oracle``
feeds the same policy ground truth instead, so perception failures and planner limits can be
told apart.

Categories the model under test does not perceive (a sign recogniser sees no cars) come from
ground truth: the drive isolates the model's effect, and the outcome says which categories came
from where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.factory import make_backend
from avrobust.campaign.records import DriveRecord, JobOutcome
from avrobust.core.components import CampaignModel
from avrobust.core.frame import Frame
from avrobust.driving.criteria import DriveResult, evaluate
from avrobust.driving.fail_safe import FailSafePolicy, relabel_doubted
from avrobust.driving.loop import DriveSetup, drive
from avrobust.driving.percepts import Percept, from_detections, from_truth
from avrobust.driving.policy import Decision, DrivingPolicy, ReferencePolicy
from avrobust.driving.trace import StepRecord, Trace
from avrobust.scenario.campaign import Job
from avrobust.scenario.schema import Scenario

CATEGORIES = ("car", "pedestrian", "traffic_sign")


def perceived_categories(model: CampaignModel) -> tuple[str, ...]:
    """What a model tells the policy: its categories, and signs only when it names their types
    (a detector's bare ``traffic_sign`` says nothing a driver can act on)."""
    if model.name == "none":
        return ()
    cats = CATEGORIES if model.categories is None else tuple(model.categories)
    if model.label_level == "category":
        cats = tuple(c for c in cats if c != "traffic_sign")
    return tuple(c for c in CATEGORIES if c in cats)


@dataclass
class DriveOutcome:
    """A drive: its trace, its criteria, which categories the model gave the policy (the rest
    came from ground truth), whether it was the oracle, and the job's full outcome (frame rows,
    components)."""

    trace: Trace
    result: DriveResult
    from_model: tuple[str, ...]
    oracle: bool
    job: JobOutcome = field(default_factory=lambda: JobOutcome(""))


def execute_closed_loop(
    job: Job,
    outcome: JobOutcome,
    start: float,
    policy: DrivingPolicy | None = None,
    on_step: Callable[[Frame, Decision, StepRecord], None] | None = None,
) -> None:
    """Run a closed-loop job into ``outcome``: the frame rows as an open-loop job records them
    (of the frames the car saw where it drove), and the drive (trace and criteria)."""
    from avrobust.campaign.runner import FrameBook, check_time, components

    scenario = job.load_scenario()
    model, attack, defence = components(job, outcome)
    oracle = model.name == "oracle"
    mine = () if oracle else perceived_categories(model)
    rest = tuple(c for c in CATEGORIES if c not in mine)
    overrides: dict = {"seed": job.seed}
    if oracle:  # ground truth needs no sensor data: render none
        overrides.update(camera=None, lidar=None)
    setup = DriveSetup.from_scenario(scenario)
    backend = make_backend(job.backend, job.carla, attack.attachments(scenario))
    backend.start(EpisodeSpec.from_scenario(scenario, **overrides))
    try:
        attack.prepare(backend, scenario)
        targets = {t.object: backend.object_id(t.object) for t in scenario.targets}
        with_model = not oracle and model.name != "none"
        book = FrameBook(
            job, scenario, model, attack, defence, defence.wrap(model), outcome, targets,
            with_model,
        )  # fmt: skip

        fail = defence.fail_safe()
        driver = policy or ReferencePolicy()
        if fail is not None:
            driver = FailSafePolicy(driver, fail)

        def percepts(frame: Frame) -> list[Percept]:
            check_time(job, start, frame.index)
            frame, dets = book.see(frame)
            notes: dict[int, str] = {}
            if fail is not None:  # doubted signs taken as the restrictive class, alarms counted
                dets, notes = relabel_doubted(dets, book.last_alarms, fail.doubted_sign)
                driver.note_alarms(book.last_alarms)
            return from_detections(frame, dets, mine, notes) + from_truth(frame, rest)

        trace = drive(backend, setup, percepts, driver, on_step=on_step)
    finally:
        backend.close()
    book.finish()
    result = evaluate(trace, setup.goal)
    outcome.drive = DriveRecord(job.id, result.to_dict(), trace.to_dict(), list(mine))


def run_drive(
    scenario: Scenario,
    model: dict,
    attack: dict | None = None,
    defence: dict | None = None,
    *,
    backend: str = "embedded",
    carla: dict | None = None,
    seed: int | None = None,
    policy: DrivingPolicy | None = None,
    on_step: Callable[[Frame, Decision, StepRecord], None] | None = None,
) -> DriveOutcome:
    """Drive ``scenario`` closed-loop with the named components (campaign references
    ``{"name": ..., "params": {...}}``; model ``oracle`` drives on ground truth), as one
    closed-loop campaign job would; errors propagate."""
    import time

    job = Job(
        "drive",
        "drive",
        scenario.name,
        scenario.model_dump(mode="json"),
        {},
        model,
        attack or {"name": "none"},
        defence or {"name": "none"},
        backend,
        scenario.seed if seed is None else seed,
        carla=carla,
        closed_loop=True,
    )
    outcome = JobOutcome(job.id)
    execute_closed_loop(job, outcome, time.monotonic(), policy, on_step)
    trace = Trace.from_dict(outcome.drive.trace)
    result = evaluate(trace, DriveSetup.from_scenario(scenario).goal)
    mine = tuple(outcome.drive.from_model)
    return DriveOutcome(trace, result, mine, model["name"] == "oracle", outcome)
