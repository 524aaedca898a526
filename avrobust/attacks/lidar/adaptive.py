"""Spoofing that knows the free-space check (an adaptive attack, as every defence must face).

The check counts, among the rays aimed into a detected box, those that fly on beyond it. Within
the same budget the attacker's best answer is to spend every spoofed return on exactly those
rays, inside the box's volume (so each counts as stopped), and only then make the victim see a
car there: rays are chosen in the check's window (spread evenly when there are more than the
budget, the rest of the budget on the phantom's other rays when there are fewer), ranges start
a third of the way into the box and are optimised white-box through the victim while kept inside
it. A phantom whose window holds more rays than twice the budget cannot pass a check with
threshold 0.5, whatever the ranges: the check's strength is the ray count, which the budget
bounds.
"""

from __future__ import annotations

import torch

from avrobust.attacks.frozen import frozen
from avrobust.attacks.lidar.objective import FrameObjective, ground_height
from avrobust.attacks.lidar.spoof import SpoofResult, crossing_rays, phantom_box
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.attacks.lidar.threat import LidarThreat
from avrobust.core.boxes import in_window
from avrobust.core.errors import AttackError
from avrobust.core.sensors import LidarSpec


def spoof_past_free_space(
    objective: FrameObjective,
    sweep: LidarSweep,
    spec: LidarSpec,
    threat: LidarThreat,
    x: float,
    y: float = 0.0,
    category: str = "car",
    steps: int = 60,
    lr: float = 0.04,
    intensity: float = 0.4,
) -> SpoofResult:
    ground = ground_height(sweep.points, x, y, -spec.mount.z)
    box = phantom_box(category, x, y, ground)
    rays, t_in, t_out = crossing_rays(spec, threat, box)
    if len(rays) == 0:
        raise AttackError(f"no ray the attacker reaches crosses a phantom at ({x:g}, {y:g}) m")
    dirs_all = spec.ray_directions()
    inside = in_window(dirs_all[rays], box).nonzero().flatten()
    outside = (~in_window(dirs_all[rays], box)).nonzero().flatten()
    n = min(threat.points, len(rays))
    if len(inside) >= n:
        pick = inside[torch.linspace(0, len(inside) - 1, n).round().long().unique()]
    else:
        rest = outside[torch.linspace(0, len(outside) - 1, n - len(inside)).round().long()]
        pick = torch.cat([inside, rest.unique()])
    lo = (t_in[pick] + 0.05).clamp(min=threat.range[0])
    hi = torch.maximum((t_out[pick] - 0.05).clamp(max=threat.range[1]), lo)

    def attacked(ranges: torch.Tensor) -> LidarSweep:
        pts = dirs_all[rays[pick]] * ranges[:, None]
        col = torch.full((len(pick), 1), intensity)
        return sweep.replace(rays[pick], torch.cat([pts, col], 1))

    with frozen(objective.victim):  # once, not per score call
        ranges = lo + (hi - lo) / 3
        best = float(objective.score(attacked(ranges).points, x, y, category).detach())
        history = [best]
        r = ranges.clone().requires_grad_(True)
        opt = torch.optim.Adam([r], lr=lr)
        for _ in range(steps):
            s = objective.score(attacked(r).points, x, y, category)
            v = float(s.detach())
            history.append(v)
            if v > best:
                best, ranges = v, r.detach().clone()
            opt.zero_grad(set_to_none=True)
            (-torch.log(s.clamp(min=1e-6))).backward()
            opt.step()
            with torch.no_grad():
                r.copy_(torch.maximum(torch.minimum(r, hi), lo))
    result = attacked(ranges.detach())
    threat.check(sweep, result, spec)
    return SpoofResult(result, rays[pick], ranges.detach(), box, best, history)
