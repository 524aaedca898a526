"""What a physical LiDAR attacker can do, stated once and checked on every attacked sweep.

A spoofer (Cao et al. 2019; Sun et al. 2020) fires laser pulses timed to the victim's
receiver: it can create a return on a ray the victim fires, at a range it chooses, within the
angular window its aim reaches, on a limited number of rays per sweep (about 60 in the
published attacks). An injected return *replaces* the genuine one on that ray (the receiver
reports the first strong return), it is not added beside it. A removal attacker (PRA, Cao et al.
2023) uses the same pulses to make the victim discard genuine returns: the ray comes back
empty. Every LiDAR attack in avrobust names one :class:`LidarThreat`, never exceeds it (the
attacked sweep is checked against the clean one), and the report prints it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.core.errors import AttackError, ConfigError
from avrobust.core.sensors import LidarSpec

Mode = Literal["replace", "remove"]


@dataclass(frozen=True)
class LidarThreat:
    """The attacker's budget.

    Attributes:
        points: rays per sweep whose return the attacker may change (create, move or remove).
        azimuth: horizontal window its pulses reach, degrees counter-clockwise from the LiDAR's
            x axis (forward), ``(low, high)``.
        elevation: vertical window, degrees (``None``: every laser).
        range: distances (m) at which created returns may lie.
        mode: ``replace`` (returns created or moved along their rays) or ``remove`` (genuine
            returns suppressed; nothing is created).
    """

    points: int = 60
    azimuth: tuple[float, float] = (-10.0, 10.0)
    elevation: tuple[float, float] | None = None
    range: tuple[float, float] = (1.0, 40.0)
    mode: Mode = "replace"

    def __post_init__(self) -> None:
        if self.points < 0:
            raise ConfigError("the point budget cannot be negative", field="threat.points")
        for name in ("azimuth", "elevation", "range"):
            v = getattr(self, name)
            if v is not None and not v[0] <= v[1]:
                raise ConfigError(f"{name} must be (low, high), got {v}", field=f"threat.{name}")
        if self.mode not in ("replace", "remove"):
            raise ConfigError(
                f"unknown mode {self.mode!r}", field="threat.mode", allowed="replace, remove"
            )

    def reachable(self, spec: LidarSpec) -> torch.Tensor:
        """``[rays]`` bool: the victim's rays (ring-major, as ``spec.ray_directions()``) that
        the attacker's pulses reach."""
        az = torch.rad2deg(spec.azimuths())[None, :].expand(spec.channels, -1)
        el = torch.rad2deg(spec.elevations())[:, None].expand(-1, spec.columns)
        ok = (az >= self.azimuth[0]) & (az <= self.azimuth[1])
        if self.elevation is not None:
            ok &= (el >= self.elevation[0]) & (el <= self.elevation[1])
        return ok.reshape(-1)

    def check(self, clean: LidarSweep, attacked: LidarSweep, spec: LidarSpec) -> int:
        """Raise :class:`AttackError` unless ``attacked`` differs from ``clean`` only as this
        threat allows; returns the number of rays changed."""
        dirs = spec.ray_directions()
        before = dict(zip(clean.ray.tolist(), range(len(clean.ray)), strict=True))
        after = dict(zip(attacked.ray.tolist(), range(len(attacked.ray)), strict=True))
        changed = set(before) ^ set(after)
        for r in set(before) & set(after):
            if not torch.equal(clean.points[before[r]], attacked.points[after[r]]):
                changed.add(r)
        if len(changed) > self.points:
            raise AttackError(f"{len(changed)} rays changed, over the budget of {self.points}")
        if not changed:
            return 0
        idx = torch.tensor(sorted(changed))
        if not self.reachable(spec)[idx].all():
            raise AttackError("a changed ray lies outside the attacker's angular window")
        created = [r for r in changed if r in after]
        if self.mode == "remove" and created:
            raise AttackError("a removal attack created or moved returns")
        for r in created:
            p = attacked.points[after[r], :3].double()
            dist = float(p.norm())
            if not self.range[0] - 1e-4 <= dist <= self.range[1] + 1e-4:
                raise AttackError(f"a created return lies at {dist:.2f} m, outside {self.range}")
            # On its ray: the point is the ray's direction times its range.
            off = (p - dirs[r].double() * dist).norm()
            if float(off) > 1e-3 * max(1.0, dist):
                raise AttackError(f"a created return lies {float(off):.4f} m off its ray")
        return len(changed)

    def describe(self) -> str:
        """One line for reports."""
        el = "all lasers" if self.elevation is None else f"elevation {self.elevation} deg"
        verb = "returns replaced along their rays" if self.mode == "replace" else "returns removed"
        return (
            f"at most {self.points} {verb} per sweep, azimuth {self.azimuth} deg, {el}, "
            f"created returns within {self.range} m"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def angle_window(x: float, y: float, half_width: float, margin_deg: float = 2.0):
    """The azimuth window (degrees) that covers an object of ``half_width`` metres centred at
    ``(x, y)`` in the LiDAR frame, with ``margin_deg`` either side."""
    centre = math.degrees(math.atan2(y, x))
    half = math.degrees(math.atan2(half_width, math.hypot(x, y))) + margin_deg
    return (centre - half, centre + half)
