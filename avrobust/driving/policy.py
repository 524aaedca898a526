"""The driving policy: what the car does with what its perception reports.

:class:`DrivingPolicy` is the protocol a user's planner implements; :class:`ReferencePolicy` is
the documented one avrobust ships. It reads only percepts (never ground truth; the oracle run
feeds it ground-truth percepts instead, so a report can separate perception failures from the
planner's own limits), the ego's own speed and pose (odometry), and the route (its map):

- speed: the intelligent driver model (IDM, Treiber et al. 2000) towards the cruise speed or the
  speed limit it has read, whichever is lower, behind the nearest obstacle in its corridor;
- stop signs: a confirmed stop sign puts a virtual stationary obstacle at its stop line (the
  sign's position along the route, less ``stop_margin``); after ``stop_hold`` seconds at a
  standstill it yields until no road user is in, or about to enter, the intersection ahead, and
  goes;
- speed limits: a lower limit is reached by the sign, comfortably when possible;
- pedestrians: one whose constant-velocity path enters the corridor while the ego would be
  there is an obstacle where it would cross;
- emergency braking: full braking while the time to collision with an obstacle in the
  corridor is below ``aeb_ttc``;
- passing: a standing obstacle at the lane's edge (a car parked half on the kerb) is passed with
  ``clearance`` by steering up to ``max_nudge`` metres off the lane centre; one that needs more
  blocks the lane, and the ego stops behind it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from avrobust.driving.dynamics import Command, EgoState, VehicleLimits
from avrobust.driving.percepts import Percept
from avrobust.driving.route import Route, pure_pursuit
from avrobust.driving.world_model import ReadSign, TrackedObject, WorldModel

LIMITS_KMH = {"speed_limit_30": 30.0, "speed_limit_50": 50.0, "speed_limit_80": 80.0}


@dataclass(frozen=True)
class Decision:
    """One step's decision: the command, the manoeuvre (``cruise``, ``follow``, ``stop_sign``,
    ``hold``, ``yield``, ``speed_limit``, ``pedestrian``, ``emergency``), the speed it aims for,
    and what caused it (a percept described, or empty), with the distance the policy believed
    it was at (metres from the front bumper: to a road user's near edge, or to a stop line)."""

    command: Command
    manoeuvre: str
    target_speed: float
    cause: str = ""
    cause_source: str = ""
    cause_gap: float | None = None


@runtime_checkable
class DrivingPolicy(Protocol):
    """What the closed loop asks of a planner: ``reset`` before a drive, then one ``decide`` per
    frame with the ego's state and the percepts of that frame."""

    name: str

    def reset(self, route: Route, cruise_speed: float, limits: VehicleLimits) -> None: ...

    def decide(self, state: EgoState, percepts: Sequence[Percept]) -> Decision: ...


@dataclass(frozen=True)
class PolicyConfig:
    """The reference policy's parameters (SI units).

    IDM: ``time_gap`` T, ``min_gap`` s0 (bumper to bumper), ``comfort_accel`` a,
    ``comfort_decel`` b. Stop signs: ``stop_margin`` before the line, ``stop_hold`` at a
    standstill, ``yield_ahead`` metres past the line watched for cross traffic (in the ego's
    path, a metre wider each side), ``yield_horizon`` seconds of its approach that still block.
    ``confirm``: consecutive sightings before a sign is acted on. ``corridor_margin``: metres
    beyond the ego's half width that count as in its path. ``aeb_ttc``: seconds.
    ``pedestrian_horizon``: seconds a walking pedestrian's path is predicted. ``sign_lateral``:
    metres off the route a sign may stand and still apply; ``same_stop``: metres within which
    two stop-sign readings are one stop line. Passing: ``clearance``,
    ``max_nudge`` and ``nudge_ahead`` metres, ``pass_memory`` frames and ``pass_commit``
    metres (see ``ReferencePolicy._nudge``).
    """

    time_gap: float = 1.5
    min_gap: float = 2.0
    comfort_accel: float = 1.5
    comfort_decel: float = 2.5
    stop_margin: float = 1.0
    stop_hold: float = 2.0
    yield_ahead: float = 20.0
    yield_horizon: float = 4.0
    confirm: int = 3
    corridor_margin: float = 0.2
    pedestrian_horizon: float = 4.0
    aeb_ttc: float = 1.5
    sign_lateral: float = 12.0
    clearance: float = 0.3
    same_stop: float = 10.0
    max_nudge: float = 1.0
    nudge_ahead: float = 40.0
    pass_memory: int = 10
    pass_commit: float = 10.0


@dataclass
class _Stop:
    """A stop sign the policy is dealing with: the line's arc length, seconds held so far,
    whether it has cleared the stop."""

    s_line: float
    held: float = 0.0
    standing: bool = False
    cleared: bool = False
    sign: object = None


@dataclass
class _Pass:
    """A standing obstacle the ego steers round, to the left (``side`` 1) or right (-1): the
    metres its last frames asked for (``recent``), those committed to once near (``need``,
    None before) and the obstacle's far end along the route (``s_end``)."""

    recent: deque = field(default_factory=deque)
    side: int = 1
    need: float | None = None
    s_end: float = 0.0

    @property
    def current(self) -> float:
        """The metres in force: the committed need, else the recent frames' largest."""
        return max(self.recent) if self.need is None else self.need


@dataclass
class _Obstacle:
    gap: float  # metres from the ego's front bumper to the obstacle's near edge, along the route
    speed: float  # its speed along the route, m/s
    manoeuvre: str
    cause: str
    source: str
    shown: float | None = None  # the distance recorded with the decision (default: gap)

    @property
    def distance(self) -> float:
        return self.gap if self.shown is None else self.shown


class ReferencePolicy:
    """The reference driving policy (see the module's description). One instance per drive."""

    name = "reference"

    def __init__(self, config: PolicyConfig = PolicyConfig()) -> None:
        self.config = config
        self.world = WorldModel(confirm=config.confirm)
        self.route: Route | None = None
        self.cruise = 0.0
        self.limits = VehicleLimits()
        self.limit_speed: float | None = None
        self.stops: list[_Stop] = []
        self._pending_limits: list[tuple[float, float]] = []  # (s of sign, m/s)
        self._passes: dict[int, _Pass] = {}  # by track id
        self._last_t: float | None = None

    def reset(self, route: Route, cruise_speed: float, limits: VehicleLimits) -> None:
        self.__init__(self.config)
        self.route, self.cruise, self.limits = route, cruise_speed, limits

    # --- geometry -------------------------------------------------------------------------
    def _front_s(self, state: EgoState) -> float:
        s, _ = self.route.project(state.x, state.y)
        return s + self.limits.length / 2

    def _in_corridor(self, d: float, width: float, d_ego: float) -> bool:
        half = (self.limits.width + width) / 2 + self.config.corridor_margin
        return abs(d - d_ego) <= half

    # --- signs ----------------------------------------------------------------------------
    def _applies(self, sign: ReadSign, s_ego: float) -> tuple[float, float] | None:
        """``(s, d)`` of a sign (where the world model has it) on the route ahead that faces
        the ego, or None."""
        s, d = self.route.project(sign.x, sign.y)
        _, _, heading = self.route.at(s)
        facing = math.cos(sign.last.yaw - heading) < -0.5  # its face looks back along the route
        if s < s_ego - 1.0 or abs(d) > self.config.sign_lateral or not facing:
            return None
        return s, d

    def _read_signs(self, s_front: float) -> None:
        for sign in self.world.signs:
            if sign.kind is None:
                continue
            where = self._applies(sign, s_front - self.limits.length)
            if sign.kind == "stop":
                # The same sign, or a new reading of it: monocular ranging can move a far
                # sign's estimate by metres, more than the world model's gate.
                known = [
                    st
                    for st in self.stops
                    if st.sign is sign
                    or (where is not None and abs(st.s_line - where[0]) < self.config.same_stop)
                ]
                if known:
                    other = known[0].sign
                    if other is not None and other is not sign and other.sigma < sign.sigma:
                        continue  # two estimates of one stop: the sharper one places the line
                    known[0].sign = sign
                    # The world model's estimate sharpens as the sign nears; once standing at
                    # it, the line stays.
                    st = known[0]
                    if where is not None and not st.cleared and not st.standing:
                        st.s_line = where[0]
                elif where is not None and where[0] > s_front - 0.5:
                    self.stops.append(_Stop(where[0], sign=sign))
            elif sign.kind in LIMITS_KMH and where is not None:
                v = LIMITS_KMH[sign.kind] / 3.6
                self._pending_limits = [q for q in self._pending_limits if abs(q[0] - where[0]) > 3]
                self._pending_limits.append((where[0], v))
        # A limit applies from its sign on.
        for s_sign, v in list(self._pending_limits):
            if s_front >= s_sign:
                self.limit_speed = v
                self._pending_limits.remove((s_sign, v))

    # --- obstacles ------------------------------------------------------------------------
    def _nudge(self, s_front: float) -> float:
        """Metres left (negative: right) of the lane centre that pass every standing
        obstacle at the lane's edge ahead with ``clearance``; 0 when none needs it or when one
        needs more than ``max_nudge`` (it blocks the lane).

        Each obstacle's need is the largest of its last ``pass_memory`` frames' and, once its
        near end is within ``pass_commit`` metres with a passable need, never shrinks until
        the ego's rear is past it, seen or not: a camera's ranges of a car swing as it fills
        the view (its box shrinks), a LiDAR loses the car alongside, and steering back towards
        a car being passed is how a side swipe happens."""
        cfg, half = self.config, self.limits.width / 2
        s_rear = s_front - self.limits.length
        seen = set()
        for tr in self.world.tracks:
            if not tr.standing:
                continue
            s, d = self.route.project(tr.x, tr.y)
            if not (s_rear - tr.length / 2 <= s <= s_front + cfg.nudge_ahead):
                continue
            if d < 0:  # on the right: our right side clear of its left side
                side, need = 1, d + tr.width / 2 + cfg.clearance + half
            else:  # on the left: our left side clear of its right side
                side, need = -1, -(d - tr.width / 2 - cfg.clearance - half)
            p = self._passes.setdefault(tr.id, _Pass(deque(maxlen=cfg.pass_memory)))
            seen.add(tr.id)
            p.side, p.s_end = side, s + tr.length / 2
            p.recent.append(need)
            now = max(p.recent)
            if p.need is not None:
                p.need = max(p.need, now)
            elif s - tr.length / 2 - s_front <= cfg.pass_commit and now <= cfg.max_nudge:
                p.need = now  # near, and passable: commit to going round it
        left = right = 0.0
        committed = False
        for key, p in list(self._passes.items()):
            if p.s_end < s_rear - 0.5 or (p.need is None and key not in seen):
                del self._passes[key]  # passed, or gone before the ego committed to it
                continue
            committed |= p.need is not None and p.current > 0
            if p.side > 0:
                left = max(left, p.current)
            else:
                right = max(right, p.current)
        if left > 0 and right > 0:
            return 0.0
        need = left if left > 0 else -right
        if abs(need) <= cfg.max_nudge:
            return need
        # Too narrow. Ahead, the lane is blocked: stay in it and stop behind. Already
        # steering round it, swinging back would be the side swipe: keep as far out as
        # allowed; the corridor check then stops the ego if that is not enough.
        return math.copysign(cfg.max_nudge, need) if committed else 0.0

    def _obstacles(self, state: EgoState, s_front: float, d_ego: float) -> list[_Obstacle]:
        out = []
        for tr in self.world.tracks:
            s, d = self.route.project(tr.x, tr.y)
            _, _, heading = self.route.at(s)
            v_along = tr.vx * math.cos(heading) + tr.vy * math.sin(heading)
            near_edge = s - tr.length / 2
            if near_edge < s_front - 0.5 - tr.length:  # behind the ego
                continue
            if self._in_corridor(d, tr.width, d_ego):
                out.append(
                    _Obstacle(
                        near_edge - s_front,
                        v_along,
                        "follow" if tr.category == "car" else "pedestrian",
                        tr.last.describe(state.x, state.y),
                        tr.last.source,
                    )
                )
            elif tr.category == "pedestrian" and self._crosses(tr, state, s, s_front, d_ego):
                out.append(
                    _Obstacle(
                        near_edge - s_front,
                        0.0,
                        "pedestrian",
                        tr.last.describe(state.x, state.y),
                        tr.last.source,
                    )
                )
        return out

    def _crosses(
        self, tr: TrackedObject, state: EgoState, s: float, s_front: float, d_ego: float
    ) -> bool:
        """Whether a walking pedestrian's constant-velocity path enters the corridor before
        the ego (at its current speed, or 1 m/s when slower) has passed it."""
        if tr.speed < 0.2:
            return False
        gap = s - s_front
        if gap < 0:
            return False
        t_pass = (gap + self.limits.length + tr.length) / max(state.speed, 1.0)
        horizon = min(self.config.pedestrian_horizon, t_pass)
        for k in range(1, 9):
            x, y = tr.at(horizon * k / 8)
            _, d = self.route.project(x, y)
            if self._in_corridor(d, tr.width, d_ego):
                return True
        return False

    def _cross_traffic(self, stop: _Stop, d_ego: float) -> TrackedObject | None:
        """A road user in the ego's path past the line, or whose constant-velocity path
        enters it within ``yield_horizon`` seconds (cross traffic with right of way)."""
        cfg = self.config
        for tr in self.world.tracks:
            for k in range(0, 9):
                if k and tr.speed < 0.5:
                    break
                x, y = tr.at(cfg.yield_horizon * k / 8)
                s, d = self.route.project(x, y)
                past_line = stop.s_line - 1.0 <= s <= stop.s_line + cfg.yield_ahead
                if past_line and self._in_corridor(d, tr.width + 2.0, d_ego):
                    return tr
        return None

    # --- the decision ---------------------------------------------------------------------
    def _idm(self, v: float, v0: float, gap: float, dv: float) -> float:
        cfg = self.config
        a, b = cfg.comfort_accel, cfg.comfort_decel
        free = 1 - (v / max(v0, 0.1)) ** 4
        s_star = cfg.min_gap + max(0.0, v * cfg.time_gap + v * dv / (2 * math.sqrt(a * b)))
        return a * (free - (s_star / max(gap, 0.1)) ** 2)

    def decide(self, state: EgoState, percepts: Sequence[Percept]) -> Decision:
        if self.route is None:
            raise RuntimeError("reset() the policy with a route before deciding")
        cfg = self.config
        dt = 0.0 if self._last_t is None else state.t - self._last_t
        self._last_t = state.t
        self.world.update(list(percepts), state.t)
        s_ego, _ = self.route.project(state.x, state.y)
        s_front = s_ego + self.limits.length / 2
        self._read_signs(s_front)
        # Where the ego will be across the lane: obstacles are judged against that line.
        d_ego = self._nudge(s_front)
        v = state.speed
        v0 = self.cruise if self.limit_speed is None else min(self.cruise, self.limit_speed)
        accel = self._idm(v, v0, 1e9, 0.0)
        manoeuvre, cause, source, gap = "cruise", "", "", None
        # A lower limit ahead: reach it by the sign (decelerate as v^2 - v_l^2 = 2 a d).
        for s_sign, v_lim in self._pending_limits:
            if v_lim < v and s_sign > s_front:
                need = -(v * v - v_lim * v_lim) / (2 * max(s_sign - s_front, 0.1))
                if need < accel and need < -0.3:
                    accel, manoeuvre = need, "speed_limit"
                    cause = f"speed limit {v_lim * 3.6:.0f} km/h ahead"
                    v0 = min(v0, v_lim)
        obstacles = self._obstacles(state, s_front, d_ego)
        finish = False
        holding: tuple[str, str, str] | None = None
        for stop in self.stops:
            if stop.cleared:
                continue
            gap_line = stop.s_line - cfg.stop_margin - s_front
            if gap_line < -3.0:  # already past it: too late to stop there
                stop.cleared = True
                continue
            if stop.standing or (v < 0.1 and gap_line < 3.0):
                # Standing at the line: brakes held for stop_hold, then yield, then go.
                stop.standing = True
                stop.held += dt
                what, why, src = "hold", "stop sign", ""
                if stop.held >= cfg.stop_hold:
                    blocker = self._cross_traffic(stop, d_ego)
                    if blocker is None:
                        stop.cleared = True
                        continue
                    what, why = "yield", blocker.last.describe(state.x, state.y)
                    src = blocker.last.source
                holding = (what, why, src)
                continue
            if gap_line < 1.0 and v < 1.0:  # IDM creeps up to a standstill: finish the stop
                finish = True
            obstacles.append(
                _Obstacle(
                    gap_line + cfg.min_gap,
                    0.0,
                    "stop_sign",
                    stop.sign.last.describe(state.x, state.y),
                    stop.sign.last.source,
                    gap_line + cfg.stop_margin,
                )
            )
        for ob in obstacles:
            a = self._idm(v, v0, ob.gap, v - ob.speed)
            if a < accel:
                accel, manoeuvre, cause, source = a, ob.manoeuvre, ob.cause, ob.source
                gap = ob.distance
            closing = v - ob.speed
            if (
                ob.manoeuvre in ("follow", "pedestrian")
                and closing > 0
                and ob.gap / closing < cfg.aeb_ttc
            ):
                accel, manoeuvre, cause, source = (
                    -self.limits.max_decel,
                    "emergency",
                    ob.cause,
                    ob.source,
                )
                gap = ob.distance
                break
        if finish and manoeuvre == "stop_sign":
            accel = min(accel, -cfg.comfort_decel)
        if holding is not None and manoeuvre != "emergency":
            accel = -cfg.comfort_decel
            manoeuvre, cause, source = holding
            gap = None
        steer = pure_pursuit(self.route, state, self.limits, d_ego)
        return Decision(Command(accel, steer), manoeuvre, v0, cause, source, gap)
