"""Sets of 2D and 3D boxes as tensors.

A :class:`Box2D` or :class:`Box3D` holds ``N`` boxes (``N`` may be 0), like torchvision's
``BoundingBoxes``: one object per image or point cloud, never one per box.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avrobust.core.calibration import Calibration
from avrobust.core.conventions import transform_points

# Corner order of a 3D box in its own frame: bottom face (z = -h/2) then top face, each starting
# at front-left and going clockwise seen from above: (+x,+y), (+x,-y), (-x,-y), (-x,+y).
_CORNER_SIGNS = torch.tensor(
    [
        [1, 1, -1],
        [1, -1, -1],
        [-1, -1, -1],
        [-1, 1, -1],
        [1, 1, 1],
        [1, -1, 1],
        [-1, -1, 1],
        [-1, 1, 1],
    ],
    dtype=torch.float64,
)
# The 12 edges of a box as pairs of corner indices.
BOX_EDGES = torch.tensor(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)


@dataclass
class Box2D:
    """``N`` axis-aligned image boxes.

    Attributes:
        xyxy: ``[N, 4]`` float, ``(x1, y1, x2, y2)`` in pixels, ``x1 <= x2`` and ``y1 <= y2``.
    """

    xyxy: torch.Tensor

    def __post_init__(self) -> None:
        self.xyxy = torch.as_tensor(self.xyxy, dtype=torch.float32).reshape(-1, 4)

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    def __getitem__(self, index) -> Box2D:
        return Box2D(self.xyxy[index].reshape(-1, 4))

    @property
    def width(self) -> torch.Tensor:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> torch.Tensor:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> torch.Tensor:
        return self.width.clamp(min=0) * self.height.clamp(min=0)

    def clip(self, width: int, height: int) -> Box2D:
        """Boxes clipped to an image of ``width`` x ``height`` pixels."""
        x = self.xyxy[:, 0::2].clamp(0, width)
        y = self.xyxy[:, 1::2].clamp(0, height)
        return Box2D(torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1))

    def to(self, device) -> Box2D:
        return Box2D(self.xyxy.to(device))

    @staticmethod
    def cat(boxes: list[Box2D]) -> Box2D:
        return Box2D(torch.cat([b.xyxy for b in boxes]) if boxes else torch.zeros(0, 4))


@dataclass
class Box3D:
    """``N`` boxes in 3D, rotated about the z axis, in one sensor frame (x fwd, y left, z up).

    Attributes:
        center: ``[N, 3]`` geometric centre (not the bottom centre as in KITTI camera labels).
        size: ``[N, 3]`` length (along the box's x), width (y), height (z), metres.
        yaw: ``[N]`` rotation about z, radians; 0 means the box's length lies along x.
    """

    center: torch.Tensor
    size: torch.Tensor
    yaw: torch.Tensor

    def __post_init__(self) -> None:
        self.center = torch.as_tensor(self.center).reshape(-1, 3)
        self.size = torch.as_tensor(self.size, dtype=self.center.dtype).reshape(-1, 3)
        self.yaw = torch.as_tensor(self.yaw, dtype=self.center.dtype).reshape(-1)
        if not (self.center.shape[0] == self.size.shape[0] == self.yaw.shape[0]):
            raise ValueError(
                "Box3D needs one center, size and yaw per box, got "
                f"{self.center.shape[0]}, {self.size.shape[0]}, {self.yaw.shape[0]}"
            )

    def __len__(self) -> int:
        return self.center.shape[0]

    def __getitem__(self, index) -> Box3D:
        return Box3D(self.center[index], self.size[index], self.yaw[index])

    @classmethod
    def from_tensor(cls, boxes: torch.Tensor) -> Box3D:
        """From ``[N, 7]`` rows ``(x, y, z, l, w, h, yaw)``."""
        boxes = boxes.reshape(-1, 7)
        return cls(boxes[:, :3], boxes[:, 3:6], boxes[:, 6])

    def as_tensor(self) -> torch.Tensor:
        """``[N, 7]`` rows ``(x, y, z, l, w, h, yaw)``."""
        return torch.cat([self.center, self.size, self.yaw[:, None]], dim=1)

    def corners(self) -> torch.Tensor:
        """``[N, 8, 3]`` corners in the order documented at ``_CORNER_SIGNS``."""
        signs = _CORNER_SIGNS.to(self.center)
        local = signs[None] * (self.size[:, None, :] / 2)
        c, s = torch.cos(self.yaw), torch.sin(self.yaw)
        x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
        y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
        return torch.stack([x, y, local[..., 2]], dim=-1) + self.center[:, None, :]

    def contains(self, points: torch.Tensor) -> torch.Tensor:
        """``[N, P]`` bool: whether each of ``P`` points ``[P, 3+]`` lies inside each box."""
        rel = points[None, :, :3].to(self.center) - self.center[:, None, :]
        c, s = torch.cos(self.yaw)[:, None], torch.sin(self.yaw)[:, None]
        lx = rel[..., 0] * c + rel[..., 1] * s
        ly = -rel[..., 0] * s + rel[..., 1] * c
        half = self.size[:, None, :] / 2
        return (
            (lx.abs() <= half[..., 0])
            & (ly.abs() <= half[..., 1])
            & (rel[..., 2].abs() <= half[..., 2])
        )

    def transform(self, pose: torch.Tensor) -> Box3D:
        """Boxes in another frame, for a ``[4, 4]`` pose whose rotation is about z only."""
        center = transform_points(pose, self.center)
        dyaw = torch.atan2(pose[1, 0], pose[0, 0]).to(self.yaw)
        return Box3D(center, self.size.clone(), self.yaw + dyaw)

    def project(self, calibration: Calibration, near: float = 0.1) -> tuple[Box2D, torch.Tensor]:
        """Project LiDAR-frame boxes to the image and take the enclosing 2D boxes.

        Edges that cross the camera's near plane are clipped at ``depth = near`` so that a box
        that is partly behind the camera still projects correctly. The result is not clipped to
        the image (use :meth:`Box2D.clip`).

        Returns:
            the ``Box2D`` and a ``[N]`` bool mask, false for boxes wholly behind the near plane
            (their 2D box is all zeros).
        """
        n = len(self)
        if n == 0:
            return Box2D(torch.zeros(0, 4)), torch.zeros(0, dtype=torch.bool)
        corners = calibration.lidar_points_to_camera(self.corners().double())  # [N, 8, 3]
        a = corners[:, BOX_EDGES[:, 0]]  # [N, 12, 3]
        b = corners[:, BOX_EDGES[:, 1]]
        za, zb = a[..., 2:3], b[..., 2:3]
        # Where an edge crosses the near plane, move its behind-camera end onto the plane.
        t = ((near - za) / (zb - za)).clamp(0, 1)
        crossing = a + t * (b - a)
        a_fix = torch.where(za < near, crossing, a)
        b_fix = torch.where(zb < near, crossing, b)
        edge_ok = ((za >= near) | (zb >= near)).squeeze(-1)  # [N, 12]
        pts = torch.cat([a_fix, b_fix], dim=1)  # [N, 24, 3]
        ok = torch.cat([edge_ok, edge_ok], dim=1)
        uv, _ = calibration.project(pts)
        big = torch.finfo(uv.dtype).max
        umin = torch.where(ok, uv[..., 0], big).amin(1)
        vmin = torch.where(ok, uv[..., 1], big).amin(1)
        umax = torch.where(ok, uv[..., 0], -big).amax(1)
        vmax = torch.where(ok, uv[..., 1], -big).amax(1)
        valid = ok.any(1)
        xyxy = torch.stack([umin, vmin, umax, vmax], dim=1)
        xyxy = torch.where(valid[:, None], xyxy, torch.zeros_like(xyxy))
        return Box2D(xyxy.float()), valid

    def to(self, device) -> Box3D:
        return Box3D(self.center.to(device), self.size.to(device), self.yaw.to(device))

    @staticmethod
    def cat(boxes: list[Box3D]) -> Box3D:
        if not boxes:
            return Box3D(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0))
        return Box3D(
            torch.cat([b.center for b in boxes]),
            torch.cat([b.size for b in boxes]),
            torch.cat([b.yaw for b in boxes]),
        )


def in_window(
    directions: torch.Tensor, box: Box3D, shrink: float = 0.15, sensor_height: float = 0.0
) -> torch.Tensor:
    """``[P]`` bool: which rays (points or directions ``[P, 3+]`` from the sensor) aim into the
    angular extent of ``box`` (one box), shrunk by ``shrink`` of its width and height."""
    p = directions[:, :3].float()
    az = torch.atan2(p[:, 1], p[:, 0])
    el = torch.atan2(p[:, 2] - sensor_height, torch.linalg.vector_norm(p[:, :2], dim=1))
    c = box.corners()[0].float()
    centre_az = torch.atan2(box.center[0, 1], box.center[0, 0]).float()
    d = torch.remainder(torch.atan2(c[:, 1], c[:, 0]) - centre_az + torch.pi, 2 * torch.pi)
    d = d - torch.pi
    lo, hi = float(d.min()), float(d.max())
    cel = torch.atan2(c[:, 2] - sensor_height, torch.linalg.vector_norm(c[:, :2], dim=1))
    elo, ehi = float(cel.min()), float(cel.max())
    w, h = (hi - lo) * shrink, (ehi - elo) * shrink
    rel = torch.remainder(az - centre_az + torch.pi, 2 * torch.pi) - torch.pi
    return (rel >= lo + w) & (rel <= hi - w) & (el >= elo + h) & (el <= ehi - h)
