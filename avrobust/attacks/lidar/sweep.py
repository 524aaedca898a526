"""A LiDAR sweep with the ray of each return, which is what LiDAR attacks work on: a physical
attacker acts on the victim's rays, not on free-floating points."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avrobust.core.errors import DataError
from avrobust.core.frame import Frame
from avrobust.core.sensors import LidarSpec


@dataclass
class LidarSweep:
    """``points`` ``[N, 4]`` (x, y, z, intensity; LiDAR frame) and ``ray`` ``[N]`` int64, the
    index of each return's ray in ``LidarSpec.ray_directions()`` (ring-major), one return per
    ray."""

    points: torch.Tensor
    ray: torch.Tensor

    def __len__(self) -> int:
        return len(self.ray)

    @classmethod
    def from_frame(cls, frame: Frame, spec: LidarSpec) -> LidarSweep:
        if frame.points is None:
            raise DataError("the frame has no LiDAR sweep")
        return cls(frame.points, ray_index(frame.points, spec, frame.point_ring))

    def replace(self, rays: torch.Tensor, points: torch.Tensor) -> LidarSweep:
        """The sweep with the returns of ``rays`` replaced by ``points`` (one per ray; rays
        without a return get one). Differentiable in ``points``."""
        keep = ~torch.isin(self.ray, rays)
        return LidarSweep(torch.cat([self.points[keep], points]), torch.cat([self.ray[keep], rays]))

    def remove(self, rays: torch.Tensor) -> LidarSweep:
        """The sweep without the returns of ``rays``."""
        keep = ~torch.isin(self.ray, rays)
        return LidarSweep(self.points[keep], self.ray[keep])


def ray_index(points: torch.Tensor, spec: LidarSpec, ring: torch.Tensor | None = None):
    """The ray of each return: its laser (``ring`` when the sensor reports it, otherwise the
    laser whose elevation is nearest) and its column (from the azimuth)."""
    xyz = points[:, :3].double()
    az = torch.atan2(xyz[:, 1], xyz[:, 0])
    azs = spec.azimuths().double()
    if spec.horizontal_fov >= 2 * math.pi - 1e-9:
        step = 2 * math.pi / spec.columns
        col = torch.round((az - float(azs[0])) / step).long() % spec.columns
    else:
        col = (az[:, None] - azs[None, :]).abs().argmin(1)
    if ring is None:
        el = torch.atan2(xyz[:, 2], xyz[:, :2].norm(dim=1))
        ring = (el[:, None] - spec.elevations().double()[None, :]).abs().argmin(1)
    return ring.long() * spec.columns + col
