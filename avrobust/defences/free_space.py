"""A physical-consistency check for LiDAR detections in the manner of CARLO (Sun et al. 2020,
"Towards robust LiDAR-based perception in autonomous driving"): a solid object stops the laser
rays aimed at it, so among the returns whose ray points into a detected box's solid angle,
few may lie *beyond* the box. A spoofed object is made of the few rays the attacker could
inject; the other rays through its volume fly on to the road and buildings behind it, and its
free-space ratio is high.

``free_space``: for each box, the rays (returns) whose azimuth and elevation fall inside the
box's angular extent shrunk by ``shrink`` (edge rays graze past real objects), counted as
*through* (range beyond the box's farthest corner, or a road return inside its footprint, where
a body would have stopped the ray) or *stopped* (a return on the box's body); rays that end
before the box (an occluder in front) or beside it say nothing.
A detection is rejected when ``through / (through + stopped)`` exceeds ``threshold`` and at
least ``min_rays`` rays say something.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avrobust.core.boxes import Box3D, in_window
from avrobust.core.components import DefenceBase
from avrobust.defences.defended import Alarm, Defended

DEFAULT_THRESHOLD = 0.4  # measured: no spoof passes, no true detection dropped (docs)
DEFAULT_MIN_RAYS = 8
GROUND_LAYER = 0.25  # metres above a box's bottom that count as road, not body


@dataclass
class FreeSpace:
    """Per box: rays through it, rays stopped in it, and their ratio (nan without evidence)."""

    through: torch.Tensor
    stopped: torch.Tensor

    @property
    def ratio(self) -> torch.Tensor:
        total = (self.through + self.stopped).float()
        return torch.where(total > 0, self.through.float() / total.clamp(min=1), torch.nan)


def free_space(
    points: torch.Tensor, boxes: Box3D, shrink: float = 0.15, sensor_height: float = 0.0
) -> FreeSpace:
    """Count, for each box, the returns passing through it and those stopped by it.
    ``points``: ``[P, 3+]`` in the LiDAR frame (the sensor at the origin)."""
    n = len(boxes)
    if n == 0 or points is None or len(points) == 0:
        z = torch.zeros(n, dtype=torch.int64)
        return FreeSpace(z, z.clone())
    p = points[:, :3].float()
    rng = torch.linalg.vector_norm(p, dim=1)
    corners = boxes.corners().float()  # [N, 8, 3]
    through, stopped = [], []
    for i in range(n):
        c = corners[i]
        window = in_window(p, boxes[i : i + 1], shrink, sensor_height)
        far = float(torch.linalg.vector_norm(c, dim=1).max())
        inside = boxes[i : i + 1].contains(p[window])[0]
        # Road returns inside the footprint: the rays reached the ground where a body should be.
        ground = inside & (p[window][:, 2] < float(c[:, 2].min()) + GROUND_LAYER)
        through.append(int((rng[window] > far).sum() + ground.sum()))
        stopped.append(int((inside & ~ground).sum()))
    return FreeSpace(torch.tensor(through), torch.tensor(stopped))


def keep_mask(
    points: torch.Tensor,
    boxes: Box3D,
    threshold: float = DEFAULT_THRESHOLD,
    min_rays: int = DEFAULT_MIN_RAYS,
    sensor_height: float = 0.0,
) -> torch.Tensor:
    """``[N]`` bool: the detections the check lets through."""
    fs = free_space(points, boxes, sensor_height=sensor_height)
    return ~rejects(fs.through, fs.stopped, threshold, min_rays)


def rejects(through, stopped, threshold: float, min_rays: int):
    """The check's rule on free-space counts (ints or tensors): enough rays say something,
    and more than ``threshold`` of them flew through."""
    total = through + stopped
    return (total >= min_rays) & (through > threshold * total)


class FreeSpaceCheck(DefenceBase):
    """A defence wrapper for any model that outputs 3D detections from a frame with a LiDAR
    sweep: it drops the detections the free-space check rejects, and passes the rest (and any
    2D output) unchanged."""

    name = "free-space-check"
    raises_alarms = True

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_rays: int = DEFAULT_MIN_RAYS):
        self.threshold, self.min_rays = threshold, min_rays

    def wrap(self, model) -> Defended:
        def step(frame, dets):
            if dets is None or dets.kind != "3d" or frame.points is None or len(dets) == 0:
                return dets, []
            keep = keep_mask(
                frame.points, Box3D.from_tensor(dets.boxes), self.threshold, self.min_rays
            )
            alarms = [
                Alarm("see_through", f"{dets.class_names[int(lab)]} box rejected")
                for lab in dets.labels[~keep]
            ]
            return dets.filter(keep), alarms

        return Defended(model, step)

    def provenance(self) -> dict:
        return {"threshold": self.threshold, "min_rays": self.min_rays}
