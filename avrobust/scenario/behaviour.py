"""Scenario behaviours: an actor that changes speed when a trigger fires (a lead vehicle that
brakes hard, a pedestrian who starts crossing as the ego nears). Both backends move actors by
the same :class:`SpeedProfile`, so a scenario means the same drive in either.

A profile is stateful per episode: the backend asks :meth:`SpeedProfile.check` once per frame, in
order, with the ego's and the actor's positions; the first frame whose condition holds fixes the
trigger time. Before it the actor keeps its initial speed; after it the speed moves to the new
value at the stated acceleration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class SpeedProfile:
    """``v0`` m/s until the trigger, then towards ``v1`` at ``accel`` m/s^2 (a magnitude).
    Trigger: at ``time`` seconds, or once the ego is within ``ego_within`` metres of the actor
    (centre to centre), whichever is given."""

    v0: float
    v1: float | None = None
    accel: float = 1.0
    time: float | None = None
    ego_within: float | None = None
    fired: float | None = None

    def __post_init__(self) -> None:
        if self.v1 is not None and self.time is not None:
            self.fired = self.time

    def check(self, t: float, ego_xy: tuple[float, float], own_xy: tuple[float, float]) -> None:
        """Fire the trigger at ``t`` when its condition holds (ego-distance triggers)."""
        if self.fired is not None or self.v1 is None or self.ego_within is None:
            return
        if math.dist(ego_xy, own_xy) <= self.ego_within:
            self.fired = t

    def _ramp(self) -> float:
        return abs(self.v1 - self.v0) / self.accel if self.v1 is not None else 0.0

    def speed(self, t: float) -> float:
        if self.fired is None or t <= self.fired:
            return self.v0
        tau = min(t - self.fired, self._ramp())
        return self.v0 + math.copysign(self.accel * tau, self.v1 - self.v0)

    def distance(self, t: float) -> float:
        """Metres travelled since t = 0 (negative t: before the episode, straight back)."""
        if self.fired is None or t <= self.fired:
            return self.v0 * t
        d = self.v0 * self.fired
        ramp = self._ramp()
        tau = min(t - self.fired, ramp)
        a = math.copysign(self.accel, self.v1 - self.v0)
        d += self.v0 * tau + 0.5 * a * tau * tau
        return d + self.v1 * max(0.0, t - self.fired - ramp)
