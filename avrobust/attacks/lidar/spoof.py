"""Spoofing: a phantom object appears where there is none (Cao et al. 2019; Sun et al. 2020).

The attacker picks up to the threat's budget of the victim's rays that cross the phantom's box
(as a car-sized obstacle would be hit) and sets the range of the return it creates on each:

* :class:`RandomSpoof` (``random``): ranges drawn uniformly through the phantom's box along
  each ray (rays drawn at random among those that cross it) - the baseline the literature
  compares against;
* :class:`QuerySpoof` (``black-box``): a query-only random search over the ranges, keeping a
  change when the victim's score for the phantom rises (Sun et al.'s setting: scores, no
  gradients);
* :class:`GradientSpoof` (``white-box``): the ranges optimised with Adam through the victim
  (the points are ``direction * range``, so every step stays on the victim's rays).

Created returns replace the genuine ones on their rays and stay inside the threat's range
window; the attacked sweep is checked against the threat before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from avrobust.attacks.frozen import frozen
from avrobust.attacks.lidar.objective import FrameObjective, ground_height
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat
from avrobust.core.boxes import Box3D
from avrobust.core.errors import AttackError, ConfigError
from avrobust.core.sensors import LidarSpec

Method = Literal["random", "black-box", "white-box"]
PHANTOM_SIZE = {"car": (4.5, 1.8, 1.5), "pedestrian": (0.6, 0.6, 1.75)}


@dataclass
class SpoofResult:
    """The attacked sweep, the rays and ranges used, and the objective's trace."""

    sweep: LidarSweep
    rays: torch.Tensor
    ranges: torch.Tensor
    phantom: Box3D
    score: float
    history: list[float] = field(default_factory=list)


def phantom_size(category: str, field: str = "category") -> tuple[float, float, float]:
    """Length, width and height (m) of a ``category`` phantom; a :class:`ConfigError` naming
    ``field`` for a category without a phantom shape."""
    if category not in PHANTOM_SIZE:
        raise ConfigError(
            f"no phantom shape for {category!r}", field=field, allowed=", ".join(PHANTOM_SIZE)
        )
    return PHANTOM_SIZE[category]


def phantom_box(category: str, x: float, y: float, ground_z: float) -> Box3D:
    """A ``category``-sized box standing on the road at ``(x, y)``, facing along x."""
    length, width, height = phantom_size(category)
    return Box3D(
        torch.tensor([[x, y, ground_z + height / 2]]),
        torch.tensor([[length, width, height]]),
        torch.zeros(1),
    )


def crossing_rays(
    spec: LidarSpec, threat: LidarThreat, box: Box3D
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reachable rays that cross ``box`` (one box), with the ranges where each enters and
    leaves it (slab test in the box's frame), entry within the threat's range window."""
    dirs = spec.ray_directions().double()
    c, s = torch.cos(-box.yaw[0].double()), torch.sin(-box.yaw[0].double())
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    d = dirs @ rot.T
    o = -(rot @ box.center[0].double())
    half = box.size[0].double() / 2
    with torch.no_grad():
        inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        t1, t2 = (-half - o) * inv, (half - o) * inv
        t_in = torch.minimum(t1, t2).amax(1)
        t_out = torch.maximum(t1, t2).amin(1)
    ok = (t_in < t_out) & (t_out > 0) & threat.reachable(spec)
    ok &= (t_in >= threat.range[0]) & (t_in <= threat.range[1])
    idx = ok.nonzero().flatten()
    return idx, t_in[idx].float(), t_out[idx].float()


def _spread(n_total: int, n: int) -> torch.Tensor:
    """``n`` indices spread evenly over ``range(n_total)``."""
    return torch.linspace(0, n_total - 1, n).round().long().unique()


def _prune(objective, sweep, rays, t_in, dirs, intensity, n, x, y, category) -> torch.Tensor:
    """White-box ray choice: start from every crossing ray (returns on the phantom's near
    surface) and drop, round by round, the 40% whose returns the victim's score depends on
    least (gradient of the score with respect to a keep weight per return), down to ``n``."""
    keep = torch.arange(len(rays))
    while len(keep) > n:
        pts = torch.cat(
            [dirs[rays[keep]] * t_in[keep, None], torch.full((len(keep), 1), intensity)], 1
        )
        s = sweep.replace(rays[keep], pts)
        w = torch.ones(len(keep), requires_grad=True)
        weights = torch.cat([torch.ones(len(s) - len(keep)), w])
        (grad,) = torch.autograd.grad(objective.score(s.points, x, y, category, weights), w)
        keep = keep[grad.topk(max(n, int(len(keep) * 0.6))).indices]
    return keep


@dataclass
class SpoofProblem:
    """What a spoofing method works on: the victim's objective, the rays that cross the phantom
    (with the ranges where each enters and leaves it), the budget ``n`` and the sweep a choice
    of rays and ranges makes (``attacked``), scored by ``value``."""

    objective: FrameObjective
    sweep: LidarSweep
    rays: torch.Tensor
    t_in: torch.Tensor
    t_out: torch.Tensor
    n: int
    range: tuple[float, float]
    x: float
    y: float
    category: str
    intensity: float
    directions: torch.Tensor
    generator: torch.Generator

    def attacked(self, ranges: torch.Tensor, pick: torch.Tensor) -> LidarSweep:
        pts = self.directions[self.rays[pick]] * ranges[:, None]
        col = torch.full((len(pick), 1), self.intensity)
        return self.sweep.replace(self.rays[pick], torch.cat([pts, col], 1))

    def value(self, s: LidarSweep, grad: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            return self.objective.score(s.points, self.x, self.y, self.category)


#: A method's answer: the rays picked (indices into the problem's rays), their ranges, the best
#: score reached and the score's trace.
Spoofed = tuple[torch.Tensor, torch.Tensor, float, list[float]]


@dataclass(frozen=True)
class RandomSpoof:
    """The baseline: rays drawn at random among those crossing the phantom, ranges drawn
    uniformly through its box."""

    name: ClassVar[str] = "random"

    def __call__(self, p: SpoofProblem) -> Spoofed:
        pick = torch.randperm(len(p.rays), generator=p.generator)[: p.n]
        u = torch.rand(p.n, generator=p.generator)
        ranges = (p.t_in[pick] + u * (p.t_out[pick] - p.t_in[pick])).clamp(*p.range)
        return pick, ranges, float(p.value(p.attacked(ranges, pick))), []


@dataclass(frozen=True)
class QuerySpoof:
    """Query-only random search (Sun et al.'s setting: scores, no gradients): rays spread
    evenly over those crossing the phantom, ranges on its near surface; each of ``steps``
    queries moves a ``share`` of the ranges by Gaussian noise of ``sigma`` metres and keeps the
    change when the victim's score rises."""

    steps: int = 60
    share: float = 0.2
    sigma: float = 0.5
    name: ClassVar[str] = "black-box"

    def __call__(self, p: SpoofProblem) -> Spoofed:
        pick = _spread(len(p.rays), p.n)
        ranges = p.t_in[pick].clone()  # start on the near surface, as a real car is hit
        best = float(p.value(p.attacked(ranges, pick)))
        history = [best]
        for _ in range(self.steps):
            trial = ranges.clone()
            k = torch.rand(p.n, generator=p.generator) < self.share
            trial[k] += torch.randn(int(k.sum()), generator=p.generator) * self.sigma
            trial = trial.clamp(*p.range)
            v = float(p.value(p.attacked(trial, pick)))
            if v > best:
                best, ranges = v, trial
            history.append(best)
        return pick, ranges, best, history


@dataclass(frozen=True)
class GradientSpoof:
    """White-box: the rays the victim's score depends on most (pruned by gradient), then the
    ranges optimised by Adam (step ``lr`` metres) on the score's log for ``steps`` steps,
    keeping the best ranges seen."""

    steps: int = 60
    lr: float = 0.04
    name: ClassVar[str] = "white-box"

    def __call__(self, p: SpoofProblem) -> Spoofed:
        pick = _prune(
            p.objective,
            p.sweep,
            p.rays,
            p.t_in,
            p.directions,
            p.intensity,
            p.n,
            p.x,
            p.y,
            p.category,
        )
        ranges = p.t_in[pick].clone()
        best = float(p.value(p.attacked(ranges, pick)))
        history = [best]
        r = ranges.clone().requires_grad_(True)
        opt = torch.optim.Adam([r], lr=self.lr)
        for _ in range(self.steps):
            s = p.value(p.attacked(r, pick), grad=True)
            v = float(s.detach())
            history.append(v)
            if v > best:  # the ranges that scored v, before this step moves them
                best, ranges = v, r.detach().clone()
            opt.zero_grad(set_to_none=True)
            (-torch.log(s.clamp(min=1e-6))).backward()
            opt.step()
            with torch.no_grad():
                r.clamp_(*p.range)
        return pick, ranges, float(p.value(p.attacked(ranges, pick))), history


SpoofMethod = RandomSpoof | QuerySpoof | GradientSpoof
SPOOF_METHODS = {m.name: m for m in (RandomSpoof, QuerySpoof, GradientSpoof)}


def spoof_method(method: Method | SpoofMethod, steps: int = 60, lr: float = 0.04) -> SpoofMethod:
    """The method object for a name (``steps`` and ``lr`` where it takes them), or ``method``
    itself when it is one already."""
    if not isinstance(method, str):
        return method
    if method == "random":
        return RandomSpoof()
    if method == "black-box":
        return QuerySpoof(steps)
    if method == "white-box":
        return GradientSpoof(steps, lr)
    raise ConfigError(
        f"unknown method {method!r}", field="method", allowed=", ".join(SPOOF_METHODS)
    )


def spoof(
    objective: FrameObjective,
    sweep: LidarSweep,
    spec: LidarSpec,
    threat: LidarThreat,
    x: float,
    y: float = 0.0,
    category: str = "car",
    method: Method | SpoofMethod = "white-box",
    steps: int = 60,
    lr: float = 0.04,
    intensity: float = 0.4,
    seed: int = 0,
) -> SpoofResult:
    """Spoof a ``category`` phantom centred at ``(x, y)`` (LiDAR frame) into ``sweep`` with
    ``method`` (an object, or its name with ``steps`` and ``lr``)."""
    if threat.mode != "replace":
        raise ConfigError("spoofing creates returns: the threat's mode must be replace")
    run = spoof_method(method, steps, lr)
    gen = torch.Generator().manual_seed(seed)
    ground = ground_height(sweep.points, x, y, -spec.mount.z)
    box = phantom_box(category, x, y, ground)
    rays, t_in, t_out = crossing_rays(spec, threat, box)
    if len(rays) == 0:
        raise AttackError(f"no ray the attacker reaches crosses a phantom at ({x:g}, {y:g}) m")
    problem = SpoofProblem(
        objective,
        sweep,
        rays,
        t_in,
        t_out,
        min(threat.points, len(rays)),
        threat.range,
        x,
        y,
        category,
        intensity,
        spec.ray_directions(),
        gen,
    )
    with frozen(objective.victim):  # once, not per score call
        pick, ranges, best, history = run(problem)
    result = problem.attacked(ranges.detach(), pick)
    threat.check(sweep, result, spec)
    return SpoofResult(result, rays[pick], ranges.detach(), box, best, history)


def frustum_phantom(real: Box3D, shift: float) -> tuple[float, float]:
    """Where the frustum attack (Hallyburton et al. 2022) puts its phantom: on the line from
    the LiDAR through the real object's centre, ``shift`` metres further (negative: nearer).
    It stays inside the camera's view of the real object, so a late fusion finds camera
    support for it, and an early fusion paints its points with the real object's scores."""
    x, y = float(real.center[0, 0]), float(real.center[0, 1])
    r = (x * x + y * y) ** 0.5
    k = (r + shift) / r
    return x * k, y * k
