"""Safety criteria scored on a drive, named as CARLA's scenario_runner and leaderboard name
them: collisions (with what, at what relative speed), running a stop sign, speeding, the
minimum time to collision, hard braking (a phantom's cost), route completion and the time to
finish; and the leaderboard's driving score, route completion times a product of infraction
penalties (pedestrian collision 0.50, vehicle 0.60, static 0.65, red light 0.70, stop sign
0.80), with the raw infractions beside it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from avrobust.driving.trace import ActorState, Trace

PENALTY = {
    "collision_pedestrian": 0.50,
    "collision_vehicle": 0.60,
    "collision_static": 0.65,
    "red_light": 0.70,
    "stop_sign": 0.80,
}
ROAD_USERS = ("car", "pedestrian")


@dataclass(frozen=True)
class CriteriaConfig:
    """``stop_zone``: metres before a stop sign's line within which the ego must come to a
    standstill (``stop_speed`` m/s or less), ``stop_beyond``: metres past the line that still
    count as stopping at it; ``speed_tolerance``: m/s over a limit that is not speeding;
    ``hard_brake``: m/s^2 of deceleration that counts as hard braking (about 0.4 g);
    ``near_miss_ttc``: seconds."""

    stop_zone: float = 10.0
    stop_beyond: float = 1.0
    stop_speed: float = 0.1
    speed_tolerance: float = 0.5
    hard_brake: float = 4.0
    near_miss_ttc: float = 1.0


@dataclass(frozen=True)
class Collision:
    t: float
    actor: str
    category: str
    relative_speed: float  # m/s


@dataclass(frozen=True)
class StopCheck:
    sign: str
    stopped: bool
    min_speed: float  # m/s, the lowest speed with the front in the zone
    stop_distance: float | None  # metres before the line where it stood still (None: never)
    passed_t: float | None = None  # seconds: when the front first passed the line
    passed_speed: float | None = None  # m/s then


@dataclass
class DriveResult:
    """Every criterion of one drive, and the driving score."""

    collisions: list[Collision] = field(default_factory=list)
    stops: list[StopCheck] = field(default_factory=list)
    speeding_max: float = 0.0  # m/s over the limit in force
    speeding_time: float = 0.0  # seconds over it
    min_ttc: float | None = None  # seconds (None: never closing on anything in its path)
    min_ttc_actor: str = ""
    hard_brakes: int = 0  # episodes of deceleration over the threshold
    max_decel: float = 0.0  # m/s^2
    route_completion: float = 0.0  # share of the route, 0-1
    time_to_finish: float | None = None  # seconds (None: did not finish)
    driving_score: float = 0.0
    infractions: dict[str, int] = field(default_factory=dict)

    @property
    def collided(self) -> bool:
        return bool(self.collisions)

    @property
    def ran_stop(self) -> bool:
        return any(not s.stopped for s in self.stops)

    def near_miss(self, ttc: float = 1.0) -> bool:
        return self.min_ttc is not None and self.min_ttc < ttc

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> DriveResult:
        d = dict(d)
        d["collisions"] = [Collision(**c) for c in d.get("collisions", [])]
        d["stops"] = [StopCheck(**c) for c in d.get("stops", [])]
        return cls(**d)


def footprint(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [length / 2, width / 2]
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two convex quadrilaterals ``[4, 2]`` overlap (separating axis theorem)."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def _velocities(trace: Trace) -> list[dict[int, tuple[float, float]]]:
    """Per step, each actor's world velocity from its positions at neighbouring steps."""
    out = []
    n = len(trace.actors)
    pos = [{a.id: (a.x, a.y) for a in step} for step in trace.actors]
    for k in range(n):
        vel = {}
        for aid, (x, y) in pos[k].items():
            prev = pos[k - 1].get(aid) if k > 0 else None
            nxt = pos[k + 1].get(aid) if k + 1 < n else None
            if prev is not None:
                vel[aid] = ((x - prev[0]) / trace.dt, (y - prev[1]) / trace.dt)
            elif nxt is not None:
                vel[aid] = ((nxt[0] - x) / trace.dt, (nxt[1] - y) / trace.dt)
            else:
                vel[aid] = (0.0, 0.0)
        out.append(vel)
    return out


def collisions(trace: Trace) -> list[Collision]:
    """The first contact with each actor (a car or pedestrian): when, and the relative speed."""
    lim = trace.limits
    vel = _velocities(trace)
    hit: dict[int, Collision] = {}
    for k, (step, actors) in enumerate(zip(trace.steps, trace.actors, strict=True)):
        ego = footprint(step.x, step.y, step.yaw, lim.length, lim.width)
        ev = (step.speed * math.cos(step.yaw), step.speed * math.sin(step.yaw))
        for a in actors:
            if a.category not in ROAD_USERS or a.id in hit:
                continue
            if boxes_overlap(ego, footprint(a.x, a.y, a.yaw, a.length, a.width)):
                av = vel[k].get(a.id, (0.0, 0.0))
                rel = math.hypot(ev[0] - av[0], ev[1] - av[1])
                hit[a.id] = Collision(step.t, a.name or str(a.id), a.category, rel)
    return sorted(hit.values(), key=lambda c: c.t)


def _front_s(trace: Trace, k: int) -> float:
    step = trace.steps[k]
    s, _ = trace.route.project(step.x, step.y)
    return s + trace.limits.length / 2


def _facing(trace: Trace, a: ActorState, s: float) -> bool:
    _, _, heading = trace.route.at(s)
    return math.cos(a.yaw - heading) < -0.5


def _stop_line(trace: Trace, a: ActorState) -> float | None:
    """Where along the route the stop line of ``a`` is (the sign's position), when ``a`` is a
    stop sign beside the route facing the ego; None otherwise."""
    if a.category != "traffic_sign" or a.kind != "stop":
        return None
    s, d = trace.route.project(a.x, a.y)
    return s if abs(d) <= 12.0 and _facing(trace, a, s) else None


def stop_signs(trace: Trace, cfg: CriteriaConfig = CriteriaConfig()) -> list[StopCheck]:
    """Each stop sign facing the route that the ego's front reached within the zone: did it
    stand still (``stop_speed``) with its front between ``stop_zone`` before the line (the
    sign's position along the route) and ``stop_beyond`` past it?"""
    signs: dict[int, tuple[ActorState, float]] = {}
    for step in trace.actors:
        for a in step:
            if a.id not in signs:
                s_line = _stop_line(trace, a)
                if s_line is not None:
                    signs[a.id] = (a, s_line)
    fronts = [_front_s(trace, k) for k in range(len(trace.steps))]
    out = []
    for a, s_line in signs.values():
        in_zone = [
            k
            for k, f in enumerate(fronts)
            if s_line - cfg.stop_zone <= f <= s_line + cfg.stop_beyond
        ]
        if not in_zone or max(fronts) < s_line - cfg.stop_beyond:
            continue  # never reached it: nothing to judge (route completion says why)
        speeds = [trace.steps[k].speed for k in in_zone]
        still = [k for k in in_zone if trace.steps[k].speed <= cfg.stop_speed]
        past = next((k for k, f in enumerate(fronts) if f > s_line), None)
        out.append(
            StopCheck(
                a.name or str(a.id),
                bool(still),
                min(speeds),
                None if not still else s_line - fronts[still[0]],
                None if past is None else trace.steps[past].t,
                None if past is None else trace.steps[past].speed,
            )
        )
    return out


def speeding(trace: Trace, cfg: CriteriaConfig = CriteriaConfig()) -> tuple[float, float]:
    """``(most m/s over, seconds over)`` the limit in force: a speed-limit sign facing the
    route applies once the ego's front passes it."""
    limits: dict[int, tuple[float, float]] = {}
    for step in trace.actors:
        for a in step:
            if (
                a.category == "traffic_sign"
                and a.kind.startswith("speed_limit_")
                and a.id not in limits
            ):
                s, d = trace.route.project(a.x, a.y)
                if abs(d) <= 12.0 and _facing(trace, a, s):
                    limits[a.id] = (s, float(a.kind.rsplit("_", 1)[1]) / 3.6)
    ordered = sorted(limits.values())
    worst = seconds = 0.0
    for k, step in enumerate(trace.steps):
        f = _front_s(trace, k)
        passed = [v for s, v in ordered if s <= f]
        if not passed:
            continue
        over = step.speed - passed[-1]
        if over > cfg.speed_tolerance:
            worst, seconds = max(worst, over), seconds + trace.dt
    return worst, seconds


def _in_path(trace: Trace):
    """Per step ``k``, each car or pedestrian in the ego's path ahead (its footprint overlapping
    the ego's width along the route): ``(k, actor, gap from the front bumper, closing speed)``."""
    lim = trace.limits
    vel = _velocities(trace)
    for k, (step, actors) in enumerate(zip(trace.steps, trace.actors, strict=True)):
        s_ego, d_ego = trace.route.project(step.x, step.y)
        front = s_ego + lim.length / 2
        for a in actors:
            if a.category not in ROAD_USERS:
                continue
            s, d = trace.route.project(a.x, a.y)
            if abs(d - d_ego) > (lim.width + a.width) / 2:
                continue
            gap = s - a.length / 2 - front
            if gap < -lim.length:
                continue  # behind
            _, _, h = trace.route.at(s)
            av = vel[k].get(a.id, (0.0, 0.0))
            yield k, a, gap, step.speed - (av[0] * math.cos(h) + av[1] * math.sin(h))


def min_time_to_collision(trace: Trace) -> tuple[float | None, str]:
    """The least time to collision with a car or pedestrian in the ego's path ahead: gap over
    closing speed."""
    best, who = None, ""
    for _, a, gap, closing in _in_path(trace):
        if closing <= 0.05:
            continue
        ttc = max(gap, 0.0) / closing
        if best is None or ttc < best:
            best, who = ttc, a.name or str(a.id)
    return best, who


def hazard_gaps(trace: Trace) -> list[float | None]:
    """Per step, the true distance (metres from the front bumper) to the nearest thing the ego
    must not reach: a road user in its path, or the line of a stop sign facing it that is still
    ahead; None when nothing is. The timeline plots it beside what the policy believed."""
    out: list[float | None] = [None] * len(trace.steps)
    for k, _, gap, _ in _in_path(trace):
        g = max(gap, 0.0)
        out[k] = g if out[k] is None else min(out[k], g)
    for k, actors in enumerate(trace.actors):
        front = _front_s(trace, k)
        for a in actors:
            s = _stop_line(trace, a)
            if s is not None and s >= front:
                out[k] = s - front if out[k] is None else min(out[k], s - front)
    return out


def hard_braking(trace: Trace, cfg: CriteriaConfig = CriteriaConfig()) -> tuple[int, float]:
    """``(episodes, strongest m/s^2)``: the deceleration the ego actually had (speed change per
    step), counting each run of steps over ``hard_brake`` once."""
    episodes, strongest, inside = 0, 0.0, False
    for a, b in zip(trace.steps, trace.steps[1:], strict=False):
        decel = (a.speed - b.speed) / trace.dt
        strongest = max(strongest, decel)
        if decel > cfg.hard_brake and not inside:
            episodes += 1
        inside = decel > cfg.hard_brake
    return episodes, strongest


def route_completion(trace: Trace, goal: float) -> tuple[float, float | None]:
    """``(share of the route's first goal metres covered, seconds to cover it or None)``."""
    if not trace.steps:
        return 0.0, None
    s0, _ = trace.route.project(trace.steps[0].x, trace.steps[0].y)
    done = 0.0
    for step in trace.steps:
        s, _ = trace.route.project(step.x, step.y)
        done = max(done, s - s0)
        if done >= goal:
            return 1.0, step.t - trace.steps[0].t
    return min(1.0, done / goal), None


def evaluate(trace: Trace, goal: float, cfg: CriteriaConfig = CriteriaConfig()) -> DriveResult:
    """Every criterion of a drive and its driving score."""
    res = DriveResult()
    res.collisions = collisions(trace)
    res.stops = stop_signs(trace, cfg)
    res.speeding_max, res.speeding_time = speeding(trace, cfg)
    res.min_ttc, res.min_ttc_actor = min_time_to_collision(trace)
    if res.collisions:
        res.min_ttc = 0.0
        res.min_ttc_actor = res.collisions[0].actor
    res.hard_brakes, res.max_decel = hard_braking(trace, cfg)
    res.route_completion, res.time_to_finish = route_completion(trace, goal)
    counts = {
        "collision_pedestrian": sum(c.category == "pedestrian" for c in res.collisions),
        "collision_vehicle": sum(c.category == "car" for c in res.collisions),
        "collision_static": 0,
        "red_light": 0,
        "stop_sign": sum(not s.stopped for s in res.stops),
    }
    res.infractions = counts
    penalty = math.prod(PENALTY[k] ** n for k, n in counts.items())
    res.driving_score = res.route_completion * penalty
    return res
