"""One closed-loop drive with a campaign's components: the scenario's world, the attack in it,
the (defended) model as the car's perception, the reference policy (or a user's) driving on
what it reports; the criteria scored on what the car did. The oracle drive feeds the same policy
ground truth instead, so perception failures and planner limits can be told apart.

Categories the model under test does not perceive (a sign recogniser sees no cars) come from
ground truth: the drive isolates the model's effect, and the outcome says which categories came
from where.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from avrobust.backends.base import EpisodeSpec
from avrobust.backends.factory import make_backend
from avrobust.campaign import registry
from avrobust.core.components import CampaignAttack, CampaignDefence, CampaignModel
from avrobust.core.frame import Frame
from avrobust.driving.criteria import DriveResult, evaluate
from avrobust.driving.loop import DriveSetup, drive
from avrobust.driving.percepts import Percept, from_detections, from_truth
from avrobust.driving.policy import Decision, DrivingPolicy, ReferencePolicy
from avrobust.driving.trace import StepRecord, Trace
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
    came from ground truth), and the components as run."""

    trace: Trace
    result: DriveResult
    from_model: tuple[str, ...]
    oracle: bool
    components: dict = field(default_factory=dict)


def stack(
    model: CampaignModel, attack: CampaignAttack, defence: CampaignDefence, oracle: bool
) -> tuple[Callable[[Frame], list[Percept]], tuple[str, ...]]:
    """The perception the policy drives on: the attack on the sensor data in flight, the
    defended model, its detections as percepts; ground truth for everything else."""
    if oracle:
        return (lambda frame: from_truth(frame, CATEGORIES)), ()
    perceive = defence.wrap(model)
    mine = perceived_categories(model)
    rest = tuple(c for c in CATEGORIES if c not in mine)

    def percepts(frame: Frame) -> list[Percept]:
        frame = attack.perturb(frame, model)
        dets = None
        if mine:
            dets = perceive(frame)
            perceive.take_alarms()  # the reference policy does not act on alarms (yet)
        return from_detections(frame, dets, mine) + from_truth(frame, rest)

    return percepts, mine


def run_drive(
    scenario: Scenario,
    model: dict,
    attack: dict | None = None,
    defence: dict | None = None,
    *,
    oracle: bool = False,
    backend: str = "embedded",
    carla: dict | None = None,
    seed: int | None = None,
    policy: DrivingPolicy | None = None,
    on_step: Callable[[Frame, Decision, StepRecord], None] | None = None,
) -> DriveOutcome:
    """Drive ``scenario`` closed-loop with the named components (campaign references
    ``{"name": ..., "params": {...}}``)."""
    attack = attack or {"name": "none"}
    defence = defence or {"name": "none"}
    m: CampaignModel = registry.create("model", model)
    a: CampaignAttack = registry.create("attack", attack)
    d: CampaignDefence = registry.create("defence", defence)
    percepts, mine = stack(m, a, d, oracle)
    setup = DriveSetup.from_scenario(scenario)
    overrides = {"seed": scenario.seed if seed is None else seed}
    if oracle:  # ground truth needs no sensor data: render none
        overrides.update(camera=None, lidar=None)
    back = make_backend(backend, carla, a.attachments(scenario))
    back.start(EpisodeSpec.from_scenario(scenario, **overrides))
    try:
        a.prepare(back, scenario)
        trace = drive(back, setup, percepts, policy or ReferencePolicy(), on_step=on_step)
    finally:
        back.close()
    components = {"model": model, "attack": attack, "defence": defence}
    return DriveOutcome(trace, evaluate(trace, setup.goal), mine, oracle, components)
