"""The closed loop: each step the backend renders the frame the ego sees from where it now is,
the caller's perception turns it into percepts, the policy decides, and the bicycle model moves
the ego by one frame interval. The drive ends at the route's goal, at the first collision, or at
its time limit; its :class:`~avrobust.driving.trace.Trace` holds everything the criteria need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from avrobust.core.frame import Frame
from avrobust.driving.criteria import boxes_overlap, footprint
from avrobust.driving.dynamics import BicycleModel, EgoState, VehicleLimits
from avrobust.driving.percepts import Percept
from avrobust.driving.policy import Decision, DrivingPolicy
from avrobust.driving.route import Route
from avrobust.driving.trace import ActorState, StepRecord, Trace


@dataclass(frozen=True)
class DriveSetup:
    """How long a drive may run: ``goal`` metres along the route, ``time_limit`` seconds,
    ``rate`` steps per second; ``cruise_speed`` m/s; ``start_speed`` m/s at t = 0;
    ``stop_on_collision``: end the drive at the first contact (what follows a crash says
    nothing about perception)."""

    goal: float
    time_limit: float
    rate: float
    cruise_speed: float
    start_speed: float
    stop_on_collision: bool = True

    @classmethod
    def from_scenario(cls, scenario) -> DriveSetup:
        """The drive a scenario file asks for (its ``driving`` section, or defaults from its
        episode: the distance the scripted ego would cover, and twice its time plus 10 s for
        stops and waits)."""
        ep, ego = scenario.episode, scenario.ego
        d = scenario.driving
        duration = ep.frames / ep.rate
        goal = d.goal if d.goal is not None else max(ego.speed * duration, 10.0)
        limit = d.time_limit if d.time_limit is not None else 2 * duration + 10.0
        cruise = d.cruise_speed if d.cruise_speed is not None else ego.speed
        return cls(goal, limit, ep.rate, cruise, ego.speed)


def actor_states(frame: Frame, names: dict[int, str]) -> list[ActorState]:
    """The frame's ground-truth objects in the world frame."""
    truth = frame.truth
    if truth is None or len(truth) == 0:
        return []
    boxes = truth.boxes_3d.transform(frame.calibration.lidar_pose.to(torch.float64))
    boxes = boxes.transform(frame.ego_pose.to(torch.float64))
    out = []
    for i, cat in enumerate(truth.categories):
        iid = int(truth.ids[i])
        c, size = boxes.center[i], boxes.size[i]
        out.append(
            ActorState(
                iid,
                names.get(iid, ""),
                cat,
                truth.subclasses[i] if cat == "traffic_sign" else cat,
                float(c[0]),
                float(c[1]),
                float(boxes.yaw[i]),
                float(size[0]),
                float(size[1]),
            )
        )
    return out


def start_state(lane: np.ndarray, speed: float) -> EgoState:
    """The ego at the start of its lane, heading along it."""
    (x0, y0), (x1, y1) = lane[0], lane[1]
    return EgoState(float(x0), float(y0), math.atan2(y1 - y0, x1 - x0), speed)


def drive(
    backend,
    setup: DriveSetup,
    perceive: Callable[[Frame], list[Percept]],
    policy: DrivingPolicy,
    limits: VehicleLimits = VehicleLimits(),
    on_step: Callable[[Frame, Decision, StepRecord], None] | None = None,
    start: EgoState | None = None,
) -> Trace:
    """Drive a started ``backend``'s episode closed-loop. ``perceive`` turns a frame into the
    policy's percepts (the stack under test: attack in flight, model, defence, conversion);
    ``on_step`` sees every frame with its decision (for per-frame records)."""
    lane = np.asarray(backend.ego_lane(), dtype=np.float64)
    route = Route(lane)
    names = backend.object_names()
    dt = 1.0 / setup.rate
    state = start or start_state(lane, setup.start_speed)
    model = BicycleModel(limits)
    policy.reset(route, setup.cruise_speed, limits)
    trace = Trace(dt, route, limits)
    s0, _ = route.project(state.x, state.y)
    steps = math.floor(setup.time_limit * setup.rate + 1e-9) + 1
    for k in range(steps):
        frame = backend.frame_at(k, state.pose())
        actors = actor_states(frame, names)
        percepts = perceive(frame)
        decision = policy.decide(state, percepts)
        rec = StepRecord(
            state.t,
            state.x,
            state.y,
            state.yaw,
            state.speed,
            state.accel,
            state.steer,
            decision.manoeuvre,
            decision.target_speed,
            decision.cause,
            decision.cause_source,
            len(percepts),
            decision.cause_gap,
        )
        trace.steps.append(rec)
        trace.actors.append(actors)
        if on_step is not None:
            on_step(frame, decision, rec)
        if setup.stop_on_collision and _touching(state, actors, limits):
            break
        s, _ = route.project(state.x, state.y)
        if s - s0 >= setup.goal:
            break
        state = model.step(state, decision.command, dt)
    return trace


def _touching(state: EgoState, actors: list[ActorState], limits: VehicleLimits) -> bool:
    ego = footprint(state.x, state.y, state.yaw, limits.length, limits.width)
    return any(
        a.category in ("car", "pedestrian")
        and boxes_overlap(ego, footprint(a.x, a.y, a.yaw, a.length, a.width))
        for a in actors
    )
