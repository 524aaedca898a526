"""The void check for removed LiDAR returns, in the spirit of the shadow checks (Hau et al.
2021, Shadow-Catcher): a laser aimed down at the road within a few tens of metres must come
back, from the road or from something on it. An attacker who removes returns (PRA-style
saturation or a physical removal) leaves a cluster of such rays with nothing: a void shaped
like the object it hides. Scattered misses (rain, dark paint, the sensor's own dropout) do not
form large clusters.

The check does not change the model's output: it cannot put back what was removed. It raises a
``void`` alarm (bearing, rays) for every solid cluster (two rings by two columns at least) of at
least ``min_rays`` missing rays whose road hit would be within ``ground_range`` metres. Measured
on clean library frames: no void in clear weather or fog, at most 10 rays in heavy rain (a
quarter of the returns dropped); a car removed 20 m ahead leaves 42. It needs the sweep's ray layout
(``lidar:`` params, default the project's 32-channel sensor) and the LiDAR's height above the
road (from the calibration: the ego frame's origin is on the road).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from avrobust.attacks.lidar.sweep import ray_index
from avrobust.core.components import DefenceBase
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import LidarSpec
from avrobust.defences.defended import Alarm, Defended


class VoidCheck(DefenceBase):
    name = "void-check"
    raises_alarms = True

    def __init__(
        self, min_rays: int = 16, ground_range: float = 45.0, lidar: dict | None = None
    ) -> None:
        if min_rays < 2 or ground_range <= 0:
            raise ConfigError(
                f"min_rays must be >= 2 and ground_range > 0, got {min_rays}, {ground_range}",
                field="min_rays",
            )
        self.min_rays, self.ground_range = min_rays, ground_range
        self.spec = LidarSpec(**(lidar or {}))

    def provenance(self) -> dict:
        return {"min_rays": self.min_rays, "ground_range": self.ground_range}

    def wrap(self, model) -> Defended:
        def step(frame, dets):
            if frame.points is None:
                return dets, []
            voids = find_voids(frame, self.spec, self.min_rays, self.ground_range)
            return dets, [
                Alarm("void", f"{rays} rays missing at bearing {bearing:+.0f} deg")
                for bearing, rays in voids
            ]

        return Defended(model, step)


def expected_rays(spec: LidarSpec, height: float, ground_range: float) -> torch.Tensor:
    """``[channels, columns]`` bool: rays aimed at the road within ``ground_range`` metres."""
    el = spec.elevations().double()
    down = el < 0
    reach = torch.where(down, height / torch.tan(-el).clamp(min=1e-9), torch.inf)
    return (down & (reach <= ground_range))[:, None].expand(spec.channels, spec.columns)


def find_voids(
    frame, spec: LidarSpec, min_rays: int, ground_range: float
) -> list[tuple[float, int]]:
    """Clusters of missing road rays: ``(bearing in degrees, rays)`` of each."""
    height = float(frame.calibration.lidar_pose[2, 3])
    expected = expected_rays(spec, height, ground_range)
    returned = torch.zeros(spec.channels * spec.columns, dtype=torch.bool)
    returned[ray_index(frame.points, spec, frame.point_ring)] = True
    missing = expected & ~returned.view(spec.channels, spec.columns)
    # A void is solid: at least two rings by two columns everywhere. Dropout (rain: a quarter
    # of the rays) leaves lone misses and thin chains, which the opening removes.
    grid = cv2.morphologyEx(
        missing.numpy().astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)
    )
    n, labels, stats, _ = cv2.connectedComponentsWithStats(grid, connectivity=4)
    if n > 1 and spec.horizontal_fov >= 2 * math.pi - 1e-9:
        _join_across_the_seam(labels, stats)
    azimuths = spec.azimuths()
    out = []
    for k in range(1, n):
        size = int(stats[k, cv2.CC_STAT_AREA])
        if size >= min_rays:
            cols = np.nonzero((labels == k).any(0))[0]
            out.append((math.degrees(float(azimuths[int(np.median(cols))])), size))
    return out


def _join_across_the_seam(labels: np.ndarray, stats: np.ndarray) -> None:
    """A 360-degree sweep wraps: clusters touching the first and the last column are one."""
    for a, b in zip(labels[:, 0], labels[:, -1], strict=True):
        if a and b and a != b:
            stats[a, cv2.CC_STAT_AREA] += stats[b, cv2.CC_STAT_AREA]
            stats[b, cv2.CC_STAT_AREA] = 0
            labels[labels == b] = a
