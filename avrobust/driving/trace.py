"""What a closed-loop drive leaves behind: the ego's state and decision at every step, and the
ground-truth road users and signs around it (world frame), from which the criteria are scored
after the drive. Plain records, so a campaign stores them and a report re-scores them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from avrobust.driving.dynamics import VehicleLimits
from avrobust.driving.route import Route


@dataclass(frozen=True)
class ActorState:
    """One ground-truth object at one step: instance ``id``, ``name`` (the scenario's, where
    known), ``category``, ``kind`` (a sign's type, else the category), world centre, heading
    and footprint."""

    id: int
    name: str
    category: str
    kind: str
    x: float
    y: float
    yaw: float
    length: float
    width: float


@dataclass(frozen=True)
class StepRecord:
    """The ego at one step and what the policy decided there: time, pose, speed (m/s),
    applied acceleration, steering, the manoeuvre, its target speed, its cause (a percept
    described), that percept's source (``model`` or ``truth``) and the distance the policy
    believed it was at (metres), and how many percepts the policy got."""

    t: float
    x: float
    y: float
    yaw: float
    speed: float
    accel: float
    steer: float
    manoeuvre: str = "cruise"
    target_speed: float = 0.0
    cause: str = ""
    cause_source: str = ""
    percepts: int = 0
    cause_gap: float | None = None


@dataclass
class Trace:
    """A drive: ``dt`` seconds per step, the ``route`` and the ego's ``limits``, and per step
    the ego's record and the actors around it."""

    dt: float
    route: Route
    limits: VehicleLimits = field(default_factory=VehicleLimits)
    steps: list[StepRecord] = field(default_factory=list)
    actors: list[list[ActorState]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "dt": self.dt,
            "route": self.route.points.tolist(),
            "limits": asdict(self.limits),
            "steps": [asdict(s) for s in self.steps],
            "actors": [[asdict(a) for a in step] for step in self.actors],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Trace:
        return cls(
            float(d["dt"]),
            Route(d["route"]),
            VehicleLimits(**d["limits"]),
            [StepRecord(**s) for s in d["steps"]],
            [[ActorState(**a) for a in step] for step in d["actors"]],
        )
