"""Spoofing: a phantom object appears where there is none (Cao et al. 2019; Sun et al. 2020).

The attacker picks up to the threat's budget of the victim's rays that cross the phantom's box
(as a car-sized obstacle would be hit) and sets the range of the return it creates on each:

* ``random``: ranges drawn uniformly through the phantom's box along each ray (rays drawn at
  random among those that cross it) - the baseline the literature compares against;
* ``black-box``: a query-only random search over the ranges, keeping a change when the
  victim's score for the phantom rises (Sun et al.'s setting: scores, no gradients);
* ``white-box``: the ranges optimised with Adam through the victim (the points are
  ``direction * range``, so every step stays on the victim's rays).

Created returns replace the genuine ones on their rays and stay inside the threat's range
window; the attacked sweep is checked against the threat before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

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


def spoof(
    objective: FrameObjective,
    sweep: LidarSweep,
    spec: LidarSpec,
    threat: LidarThreat,
    x: float,
    y: float = 0.0,
    category: str = "car",
    method: Method = "white-box",
    steps: int = 60,
    lr: float = 0.04,
    intensity: float = 0.4,
    seed: int = 0,
) -> SpoofResult:
    """Spoof a ``category`` phantom centred at ``(x, y)`` (LiDAR frame) into ``sweep``."""
    if threat.mode != "replace":
        raise ConfigError("spoofing creates returns: the threat's mode must be replace")
    gen = torch.Generator().manual_seed(seed)
    ground = ground_height(sweep.points, x, y, -spec.mount.z)
    box = phantom_box(category, x, y, ground)
    rays, t_in, t_out = crossing_rays(spec, threat, box)
    if len(rays) == 0:
        raise AttackError(f"no ray the attacker reaches crosses a phantom at ({x:g}, {y:g}) m")
    n = min(threat.points, len(rays))
    dirs_all = spec.ray_directions()
    lo, hi = threat.range

    def attacked(ranges: torch.Tensor, pick: torch.Tensor) -> LidarSweep:
        pts = dirs_all[rays[pick]] * ranges[:, None]
        col = torch.full((len(pick), 1), intensity)
        return sweep.replace(rays[pick], torch.cat([pts, col], 1))

    def value(s: LidarSweep, grad: bool = False) -> torch.Tensor:
        with torch.set_grad_enabled(grad):
            return objective.score(s.points, x, y, category)

    history: list[float] = []
    if method == "random":
        pick = torch.randperm(len(rays), generator=gen)[:n]
        u = torch.rand(n, generator=gen)
        ranges = (t_in[pick] + u * (t_out[pick] - t_in[pick])).clamp(lo, hi)
        best = float(value(attacked(ranges, pick)))
    elif method in ("white-box", "black-box"):
        if method == "white-box":
            pick = _prune(objective, sweep, rays, t_in, dirs_all, intensity, n, x, y, category)
        else:
            pick = _spread(len(rays), n)
        ranges = t_in[pick].clone()  # start on the phantom's near surface, as a real car is hit
        best = float(value(attacked(ranges, pick)))
        history.append(best)
        if method == "white-box":
            r = ranges.clone().requires_grad_(True)
            opt = torch.optim.Adam([r], lr=lr)
            for _ in range(steps):
                s = value(attacked(r, pick), grad=True)
                v = float(s.detach())
                history.append(v)
                if v > best:  # the ranges that scored v, before this step moves them
                    best, ranges = v, r.detach().clone()
                opt.zero_grad(set_to_none=True)
                (-torch.log(s.clamp(min=1e-6))).backward()
                opt.step()
                with torch.no_grad():
                    r.clamp_(lo, hi)
            best = float(value(attacked(ranges, pick)))
        else:
            for _ in range(steps):
                trial = ranges.clone()
                k = torch.rand(n, generator=gen) < 0.2
                trial[k] += torch.randn(int(k.sum()), generator=gen) * 0.5
                trial = trial.clamp(lo, hi)
                v = float(value(attacked(trial, pick)))
                if v > best:
                    best, ranges = v, trial
                history.append(best)
    else:
        raise ConfigError(
            f"unknown method {method!r}", field="method", allowed="random, black-box, white-box"
        )
    result = attacked(ranges.detach(), pick)
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
