"""Removal: a real object disappears because the attacker suppresses some of its returns (the
physical removal attack PRA, Cao et al. 2023, makes the victim discard genuine returns by
injecting its own).

Which returns: the object's returns on rays the attacker reaches, chosen greedily by how much
the victim's score for the object depends on each. Every point carries a keep weight that
multiplies its pillar features (1 keeps it, 0 removes it); the gradient of the score with
respect to the weights, at the current sweep, ranks the remaining returns, and the top few are
removed before the next round, until the budget is spent or the victim no longer finds the
object (:class:`GradientRemoval`, ``white-box``). :class:`RandomRemoval` (``random``) removes
returns of the object at random, the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from avrobust.attacks.frozen import frozen
from avrobust.attacks.lidar.objective import FrameObjective, overlaps
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat
from avrobust.core.boxes import Box3D
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import LidarSpec

Method = Literal["random", "white-box"]


@dataclass
class RemovalResult:
    sweep: LidarSweep
    removed: torch.Tensor  # rays whose returns were suppressed
    score: float
    history: list[float] = field(default_factory=list)


def object_returns(sweep: LidarSweep, box: Box3D, spec: LidarSpec, threat: LidarThreat):
    """Indices of the returns inside ``box`` (enlarged by 0.3 m) on rays the attacker reaches."""
    grown = Box3D(box.center, box.size + 0.6, box.yaw)
    inside = grown.contains(sweep.points[:, :3].to(box.center.dtype))[0]
    return (inside & threat.reachable(spec)[sweep.ray]).nonzero().flatten()


@dataclass(frozen=True)
class RandomRemoval:
    """The baseline: the budget's worth of the object's reachable returns, drawn at random."""

    name: ClassVar[str] = "random"

    def __call__(self, objective, sweep, threat, box, cand, reach, seed) -> tuple:
        gen = torch.Generator().manual_seed(seed)
        chosen = cand[torch.randperm(len(cand), generator=gen)[: threat.points]]
        return sweep.remove(sweep.ray[chosen]), []


@dataclass(frozen=True)
class GradientRemoval:
    """White-box greedy removal: each round removes the ``per_round`` returns the victim's
    score for the object depends on most (gradient of a keep weight per point), until the
    budget is spent or the victim no longer finds the object."""

    per_round: int = 10
    name: ClassVar[str] = "white-box"

    def __call__(self, objective, sweep, threat, box, cand, reach, seed) -> tuple:
        x, y = float(box.center[0, 0]), float(box.center[0, 1])
        history: list[float] = []
        removed = torch.zeros(len(sweep), dtype=torch.bool)
        while int(removed.sum()) < threat.points:
            w = (~removed).float().requires_grad_(True)
            # Any class counts: a car seen as a pedestrian still stops the planner.
            s = objective.score(sweep.points, x, y, None, weights=w, radius=reach)
            history.append(float(s.detach()))
            current = sweep.remove(sweep.ray[removed])
            if not overlaps(objective.detect(current.points), None, box):
                break
            (grad,) = torch.autograd.grad(s, w)
            left = cand[~removed[cand]]
            if len(left) == 0:
                break
            k = min(self.per_round, threat.points - int(removed.sum()), len(left))
            removed[left[grad[left].topk(k).indices]] = True
        return sweep.remove(sweep.ray[removed]), history


RemovalMethod = RandomRemoval | GradientRemoval
REMOVAL_METHODS = {m.name: m for m in (RandomRemoval, GradientRemoval)}


def removal_method(method: Method | RemovalMethod, per_round: int = 10) -> RemovalMethod:
    """The method object for a name, or ``method`` itself when it is one already."""
    if not isinstance(method, str):
        return method
    if method == "random":
        return RandomRemoval()
    if method == "white-box":
        return GradientRemoval(per_round)
    raise ConfigError(
        f"unknown method {method!r}", field="method", allowed=", ".join(REMOVAL_METHODS)
    )


def remove(
    objective: FrameObjective,
    sweep: LidarSweep,
    spec: LidarSpec,
    threat: LidarThreat,
    box: Box3D,
    method: Method | RemovalMethod = "white-box",
    per_round: int = 10,
    seed: int = 0,
) -> RemovalResult:
    """Hide the object in ``box`` (one box, LiDAR frame) from the victim within ``threat``,
    with ``method`` (an object, or its name with ``per_round``)."""
    if threat.mode != "remove":
        raise ConfigError("a removal attack needs a threat in remove mode", field="threat.mode")
    run = removal_method(method, per_round)
    x, y = float(box.center[0, 0]), float(box.center[0, 1])
    # Any detection centred over the object's footprint overlaps it: watch them all.
    reach = float(box.size[0, :2].norm()) / 2 + 0.5
    cand = object_returns(sweep, box, spec, threat)
    with frozen(objective.victim):  # once, not per score call
        result, history = run(objective, sweep, threat, box, cand, reach, seed)
    threat.check(sweep, result, spec)
    with torch.no_grad():
        final = float(objective.score(result.points, x, y, None, radius=reach))
    gone = torch.isin(sweep.ray, result.ray, invert=True)
    return RemovalResult(result, sweep.ray[gone], final, history)
