"""LiDAR adversarial training: a share of the training sweeps carry a spoofed phantom (an
unlabelled object the detector must learn not to report) or lose returns of a real object
(which it must still find), both made by avrobust's own LiDAR attacks within a physical threat
model, random or optimised against the current model.

The attacks are the ones the testbed evaluates (:func:`~avrobust.attacks.lidar.spoof.spoof`,
:func:`~avrobust.attacks.lidar.remove.remove`), run on the training sweep with the ray of each
return recovered from its direction (the dataset stores points, not rays); every attacked
sweep passes the threat's own check, so training never sees an attack a real spoofer could not
mount. This follows adversarial training for LiDAR detectors as Tu et al. 2020 and Sun et al.
2020 evaluate it: robustness to the attacks seen, bought with some clean accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.attacks.lidar.remove import remove
from avrobust.attacks.lidar.spoof import phantom_size, spoof
from avrobust.attacks.lidar.sweep import LidarSweep, ray_index
from avrobust.attacks.lidar.threat import LidarThreat, angle_window
from avrobust.core.errors import AttackError, ConfigError
from avrobust.core.sensors import LidarSpec
from avrobust.models.lidar_data import LidarSample
from avrobust.models.lidar_detector import LidarDetector


@dataclass
class LidarAdvConfig:
    """Attributes: spoof_share and remove_share (sweeps given each attack; at most one per
    sweep), optimised (share of the attacks run white-box against the current model; the rest
    random), spoof_points (returns per phantom, the spoofing budget), spoof_range (phantom
    distances, m), categories (phantom kinds), spoof_steps (white-box steps on the ranges),
    remove_points (returns removed from one object, the removal budget), remove_range (object
    distances, m), remove_rounds (gradient rounds of the white-box removal)."""

    spoof_share: float = 0.25
    remove_share: float = 0.25
    optimised: float = 0.5
    spoof_points: int = 60
    spoof_range: tuple[float, float] = (5.0, 20.0)
    categories: tuple[str, ...] = ("car", "pedestrian")
    spoof_steps: int = 5
    remove_points: int = 250
    remove_range: tuple[float, float] = (5.0, 30.0)
    remove_rounds: int = 5

    def __post_init__(self) -> None:
        for name in ("spoof_share", "remove_share", "optimised"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {v}", field=name)
        if self.spoof_share + self.remove_share > 1.0:
            raise ConfigError("spoof_share + remove_share must be at most 1", field="spoof_share")
        for c in self.categories:
            phantom_size(c, field="categories")
        if self.spoof_points < 1 or self.remove_points < 1:
            raise ConfigError("attack budgets must be at least one return", field="spoof_points")


@dataclass
class Attacked:
    """A training sweep after :func:`attack_sample`: the sample (labels unchanged), the
    attack applied (``none``, ``spoof`` or ``remove``) and where the crop should look (the
    phantom or the hidden object, LiDAR frame), if anywhere."""

    sample: LidarSample
    kind: str
    focus: tuple[float, float] | None = None
    optimised: bool = False


def _u(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def _phantom_place(s: LidarSample, cfg: LidarAdvConfig, gen: torch.Generator):
    """A phantom position inside the camera's view, at least 6 m from every labelled object
    (so that the phantom is a false object, not a second view of a real one); ``None`` when
    five draws find none."""
    for _ in range(5):
        x = _u(gen, *cfg.spoof_range)
        bearing = s.fov_axis + _u(gen, -0.6, 0.6) * s.fov_half
        y = x * math.tan(bearing)
        if len(s.boxes) == 0:
            return x, y
        d = torch.hypot(s.boxes.center[:, 0] - x, s.boxes.center[:, 1] - y)
        if float(d.min()) > 6.0:
            return x, y
    return None


def _removal_target(s: LidarSample, cfg: LidarAdvConfig, gen: torch.Generator) -> int | None:
    """A labelled object within ``remove_range`` with at least 20 returns, at random."""
    if len(s.boxes) == 0:
        return None
    r = s.boxes.center[:, :2].norm(dim=1)
    ok = (r >= cfg.remove_range[0]) & (r <= cfg.remove_range[1]) & (s.num_points >= 20)
    idx = ok.nonzero().flatten()
    if len(idx) == 0:
        return None
    return int(idx[int(torch.randint(len(idx), (), generator=gen))])


def attack_sample(
    s: LidarSample,
    model: LidarDetector,
    spec: LidarSpec,
    cfg: LidarAdvConfig,
    gen: torch.Generator,
) -> Attacked:
    """``s`` under one attack drawn from ``cfg`` (or none). The attack runs ``model`` in eval
    mode and gives it back in the mode it had."""
    roll = float(torch.rand((), generator=gen))
    optimised = float(torch.rand((), generator=gen)) < cfg.optimised
    method = "white-box" if optimised else "random"
    seed = int(torch.randint(2**31 - 1, (), generator=gen))
    if roll < cfg.spoof_share:
        place = _phantom_place(s, cfg, gen)
        if place is None:
            return Attacked(s, "none")
        x, y = place
        cat = cfg.categories[int(torch.randint(len(cfg.categories), (), generator=gen))]
        length, width, _ = phantom_size(cat)
        threat = LidarThreat(
            points=cfg.spoof_points, azimuth=angle_window(x, y, width / 2 + 1.0, 3.0)
        )
        sweep = LidarSweep(s.points, ray_index(s.points, spec))
        # x is the phantom's rear face; spoof() takes its centre.
        centre = x + length / 2
        try:
            res = spoof(
                FrameObjective(model, None),
                sweep,
                spec,
                threat,
                centre,
                y,
                cat,
                method,
                steps=cfg.spoof_steps,
                seed=seed,
            )
        except AttackError:  # no reachable ray crosses the phantom
            return Attacked(s, "none")
        return Attacked(_with_points(s, res.sweep.points), "spoof", (centre, y), optimised)
    if roll < cfg.spoof_share + cfg.remove_share:
        k = _removal_target(s, cfg, gen)
        if k is None:
            return Attacked(s, "none")
        box = s.boxes[k : k + 1]
        x, y = float(box.center[0, 0]), float(box.center[0, 1])
        half = float(box.size[0, :2].norm()) / 2
        threat = LidarThreat(
            points=cfg.remove_points, azimuth=angle_window(x, y, half, 3.0), mode="remove"
        )
        sweep = LidarSweep(s.points, ray_index(s.points, spec))
        per_round = max(1, math.ceil(cfg.remove_points / cfg.remove_rounds))
        res = remove(FrameObjective(model, None), sweep, spec, threat, box, method, per_round, seed)
        return Attacked(_with_points(s, res.sweep.points.detach()), "remove", (x, y), optimised)
    return Attacked(s, "none")


def _with_points(s: LidarSample, points: torch.Tensor) -> LidarSample:
    return LidarSample(
        points.detach(),
        s.boxes,
        s.labels,
        s.occluded,
        s.num_points,
        s.fov_axis,
        s.fov_half,
        s.weather,
        s.name,
        s.calibration,
    )
