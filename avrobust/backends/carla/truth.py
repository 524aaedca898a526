"""Ground truth of a CARLA frame in avrobust's terms: every tracked actor's and sign's 3D box in
the LiDAR frame, its tight 2D box from the instance segmentation camera (or, for level objects
that camera does not tag by actor, the projection of its 3D box), the visible share and the
LiDAR returns on it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.conventions import invert_pose
from avrobust.core.frame import GroundTruth


@dataclass(frozen=True)
class Tracked:
    """A thing whose ground truth each frame reports. ``carla_id``: its actor id (its pixels in
    the instance segmentation image), or None for level objects such as map signs."""

    instance: int
    name: str
    category: str
    subclass: str
    carla_id: int | None


@dataclass(frozen=True)
class WorldBox:
    """A box in our world frame: centre (x, y, z) metres, size (l, w, h) metres, yaw radians."""

    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float


def world_box(bbox, transform=None) -> WorldBox:
    """A CARLA ``BoundingBox`` (``extent`` is half the size) in our world frame. Actor boxes are
    relative to the actor (``transform``: its world transform); level objects' boxes are already
    in the world (``transform`` None)."""
    from avrobust.backends.carla.convert import transform_to_pose

    loc = bbox.location
    if transform is not None:
        pose = transform_to_pose(transform).numpy()
        local = np.array([loc.x, -loc.y, loc.z, 1.0])
        centre = pose @ local
        yaw = math.atan2(pose[1, 0], pose[0, 0]) - math.radians(getattr(bbox.rotation, "yaw", 0.0))
    else:
        centre = np.array([loc.x, -loc.y, loc.z, 1.0])
        yaw = -math.radians(bbox.rotation.yaw)
    e = bbox.extent
    return WorldBox(tuple(centre[:3]), (2 * e.x, 2 * e.y, 2 * e.z), yaw)


def ground_truth(
    tracked: list[Tracked],
    boxes: list[WorldBox],
    world_from_ego: torch.Tensor,
    calibration: Calibration,
    points: torch.Tensor | None,
    instances: torch.Tensor | None,
) -> tuple[GroundTruth, torch.Tensor | None]:
    """The frame's ground truth, and the instance map in avrobust ids (None without the
    instance camera)."""
    if not tracked:
        return GroundTruth.empty(), None
    lidar_from_world = invert_pose(world_from_ego @ calibration.lidar_pose)
    centres = torch.tensor([b.center for b in boxes], dtype=torch.float64)
    homo = torch.cat([centres, torch.ones(len(boxes), 1, dtype=torch.float64)], 1)
    local = (lidar_from_world @ homo.T).T[:, :3]
    heading = math.atan2(float(lidar_from_world[1, 0]), float(lidar_from_world[0, 0]))
    b3 = Box3D(
        local.float(),
        torch.tensor([b.size for b in boxes], dtype=torch.float32),
        torch.tensor([b.yaw + heading for b in boxes], dtype=torch.float32),
    )
    k = calibration.intrinsics
    projected, in_front = b3.project(calibration)
    projected = projected.clip(k.width, k.height)
    xyxy = projected.xyxy.clone()
    visible = torch.ones(len(tracked))
    id_map = None
    if instances is not None:
        id_map = torch.zeros_like(instances)
        for i, t in enumerate(tracked):
            if t.carla_id is None:
                continue
            pix = instances == t.carla_id
            id_map[pix] = t.instance
            n = int(pix.sum())
            area = float(projected.area[i]) if in_front[i] else 0.0
            if n == 0:
                xyxy[i] = 0.0
                visible[i] = 0.0
                continue
            vs, us = torch.nonzero(pix, as_tuple=True)
            xyxy[i] = torch.tensor(
                [us.min(), vs.min(), us.max() + 1, vs.max() + 1], dtype=xyxy.dtype
            )
            visible[i] = min(1.0, n / max(area, 1.0))
    xyxy[~in_front] = 0.0
    visible[~in_front] = 0.0
    counts = b3.contains(points[:, :3]).sum(1) if points is not None and len(points) else None
    truth = GroundTruth(
        torch.tensor([t.instance for t in tracked]),
        [t.category for t in tracked],
        [t.subclass for t in tracked],
        b3,
        Box2D(xyxy),
        visible,
        counts if counts is not None else torch.zeros(len(tracked), dtype=torch.int64),
    )
    return truth, id_map
