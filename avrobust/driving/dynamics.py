"""The ego's motion: a kinematic bicycle model about the centre of mass, with acceleration,
braking and jerk limits, stepped at the episode rate.

The same model moves the ego in both backends (the CARLA backend sets the ego's transform from
it, with physics off like every other actor there), so one drive means the same trajectory in
either and a seed reproduces it bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class VehicleLimits:
    """What the ego can do.

    Attributes:
        length, width: body size, metres (a mid-size sedan, as CARLA's ego blueprint).
        wheelbase: metres; ``rear_share`` of it lies behind the centre of mass.
        max_accel: m/s^2 of throttle.
        max_decel: m/s^2 of full braking (about 0.8 g on dry asphalt).
        max_jerk: m/s^3, how fast the acceleration may change (brakes build up pressure).
        max_steer: radians at the front wheels.
    """

    length: float = 4.6
    width: float = 1.85
    wheelbase: float = 2.75
    rear_share: float = 0.5
    max_accel: float = 3.0
    max_decel: float = 8.0
    max_jerk: float = 30.0
    max_steer: float = 0.6

    def __post_init__(self) -> None:
        for name in ("length", "width", "wheelbase", "max_accel", "max_decel", "max_jerk"):
            if not getattr(self, name) > 0:
                raise ValueError(f"VehicleLimits.{name} must be positive")
        if not 0 < self.rear_share < 1:
            raise ValueError("VehicleLimits.rear_share must be in (0, 1)")


@dataclass(frozen=True)
class EgoState:
    """Where the ego is: ``x, y`` metres (centre of the body, world frame), ``yaw`` radians,
    ``speed`` m/s (never negative: the ego does not reverse), ``accel`` m/s^2 the throttle or
    brakes last applied (held brakes at a standstill stay negative; the deceleration people feel
    is the change of ``speed``), ``steer`` radians, ``t`` seconds."""

    x: float
    y: float
    yaw: float
    speed: float
    accel: float = 0.0
    steer: float = 0.0
    t: float = 0.0

    def pose(self):
        """``[4, 4]`` float64 world-from-ego pose on the ground."""
        import torch

        c, s = math.cos(self.yaw), math.sin(self.yaw)
        m = torch.eye(4, dtype=torch.float64)
        m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
        m[0, 3], m[1, 3] = self.x, self.y
        return m

    def front(self, limits: VehicleLimits) -> tuple[float, float]:
        """World position of the middle of the front bumper."""
        h = limits.length / 2
        return self.x + h * math.cos(self.yaw), self.y + h * math.sin(self.yaw)


@dataclass(frozen=True)
class Command:
    """What the policy asks for: ``accel`` m/s^2 (negative brakes) and ``steer`` radians."""

    accel: float
    steer: float = 0.0


class BicycleModel:
    """Steps an :class:`EgoState` under a :class:`Command`.

    The requested acceleration is clipped to ``[-max_decel, max_accel]`` and reached no faster
    than ``max_jerk`` allows; each step is split into ``substeps`` in which the acceleration is
    held and position integrated exactly for it (the ego stops at speed 0 within a substep
    instead of rolling backwards).
    """

    def __init__(self, limits: VehicleLimits = VehicleLimits(), substeps: int = 4) -> None:
        self.limits = limits
        self.substeps = substeps

    def step(self, state: EgoState, command: Command, dt: float) -> EgoState:
        lim = self.limits
        want = min(max(command.accel, -lim.max_decel), lim.max_accel)
        steer = min(max(command.steer, -lim.max_steer), lim.max_steer)
        lr = lim.wheelbase * lim.rear_share
        beta = math.atan(lim.rear_share * math.tan(steer))  # slip angle at the centre of mass
        x, y, yaw, v, accel = state.x, state.y, state.yaw, state.speed, state.accel
        h = dt / self.substeps
        for _ in range(self.substeps):
            # The acceleration moves towards the request at the jerk limit, held per substep.
            accel = min(max(want, accel - lim.max_jerk * h), accel + lim.max_jerk * h)
            # Time the speed stays positive in this substep under that acceleration.
            tau = h if accel >= 0 or v + accel * h >= 0 else v / -accel
            dist = v * tau + 0.5 * accel * tau * tau
            v_mid = dist / tau if tau > 0 else 0.0
            dyaw = v_mid * math.sin(beta) / lr * tau
            heading = yaw + beta + dyaw / 2
            x += dist * math.cos(heading)
            y += dist * math.sin(heading)
            yaw += dyaw
            v = max(0.0, v + accel * tau)
        return EgoState(x, y, _wrap(yaw), v, accel, steer, state.t + dt)

    def stopping_distance(self, speed: float, decel: float | None = None) -> float:
        """Metres to stand still from ``speed`` when full braking (``decel``, default
        ``max_decel``) is requested with the acceleration at 0: the jerk-limited build-up
        (``d = v t - j t^3 / 6`` over ``t = D / j``) then constant deceleration."""
        lim = self.limits
        d = lim.max_decel if decel is None else decel
        ramp = d / lim.max_jerk
        v_ramp = speed - lim.max_jerk * ramp * ramp / 2
        if v_ramp <= 0:  # stops before full braking builds up: v = j t^2 / 2
            t = math.sqrt(2 * speed / lim.max_jerk)
            return speed * t - lim.max_jerk * t**3 / 6
        return speed * ramp - lim.max_jerk * ramp**3 / 6 + v_ramp * v_ramp / (2 * d)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi
