"""Frame: everything one backend tick produces for perception, attacks and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.surface import SurfaceView


@dataclass
class GroundTruth:
    """The objects of one frame.

    Attributes:
        ids: ``[N]`` int64 instance ids (the same ids as ``Frame.instance_map`` and
            ``Frame.point_instance``).
        categories: ``N`` coarse classes: ``"car"``, ``"pedestrian"``, ``"traffic_sign"``, ...
        subclasses: ``N`` fine classes: a sign's type (``"stop"``, ``"speed_limit_30"``) or a
            vehicle's body (``"sedan"``); ``""`` where there is none.
        boxes_3d: 3D boxes in the LiDAR frame.
        boxes_2d: tight boxes around each object's visible pixels; all zeros when not visible.
        visible_fraction: ``[N]`` share of the object's projected pixels that are not occluded.
        num_points: ``[N]`` int64 LiDAR returns on the object.
    """

    ids: torch.Tensor
    categories: list[str]
    subclasses: list[str]
    boxes_3d: Box3D
    boxes_2d: Box2D
    visible_fraction: torch.Tensor
    num_points: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.categories)
        self.ids = torch.as_tensor(self.ids, dtype=torch.int64).reshape(-1)
        self.visible_fraction = torch.as_tensor(self.visible_fraction, dtype=torch.float32)
        self.num_points = torch.as_tensor(self.num_points, dtype=torch.int64)
        sizes = {
            "ids": self.ids.shape[0],
            "subclasses": len(self.subclasses),
            "boxes_3d": len(self.boxes_3d),
            "boxes_2d": len(self.boxes_2d),
            "visible_fraction": self.visible_fraction.shape[0],
            "num_points": self.num_points.shape[0],
        }
        bad = {k: v for k, v in sizes.items() if v != n}
        if bad:
            raise ValueError(f"GroundTruth has {n} categories but {bad}")

    def __len__(self) -> int:
        return len(self.categories)

    @classmethod
    def empty(cls) -> GroundTruth:
        return cls(
            torch.zeros(0),
            [],
            [],
            Box3D.cat([]),
            Box2D(torch.zeros(0, 4)),
            torch.zeros(0),
            torch.zeros(0),
        )

    def select(self, keep: torch.Tensor) -> GroundTruth:
        """The objects selected by a bool mask ``[N]``."""
        idx = torch.nonzero(keep).flatten().tolist()
        return GroundTruth(
            self.ids[idx],
            [self.categories[i] for i in idx],
            [self.subclasses[i] for i in idx],
            self.boxes_3d[idx],
            self.boxes_2d[idx],
            self.visible_fraction[idx],
            self.num_points[idx],
        )


@dataclass
class Frame:
    """One synchronised camera image and LiDAR sweep with calibration and ground truth.

    Attributes:
        calibration: intrinsics and sensor poses on the ego.
        image: ``[3, H, W]`` float32 RGB in [0, 1], or None when the scenario has no camera.
        points: ``[N, 4]`` float32 ``(x, y, z, intensity)`` in the LiDAR frame, or None.
        truth: ground truth objects.
        surfaces: attack surfaces visible or not in this frame, by name.
        index: frame number within the episode.
        timestamp: seconds since the episode started.
        ego_pose: ``[4, 4]`` float64 world-from-ego pose.
        point_ring: ``[N]`` int64 laser index of each point, or None.
        point_instance: ``[N]`` int64 instance id hit by each point (0: background), or None.
        instance_map: ``[H, W]`` int64 instance id of each pixel (0: background), or None.
        depth: ``[H, W]`` float32 distance along the optical axis, metres (inf: sky), or None.
        metadata: plain data: scenario, job id, weather, seed.
    """

    calibration: Calibration
    image: torch.Tensor | None = None
    points: torch.Tensor | None = None
    truth: GroundTruth = field(default_factory=GroundTruth.empty)
    surfaces: dict[str, SurfaceView] = field(default_factory=dict)
    index: int = 0
    timestamp: float = 0.0
    ego_pose: torch.Tensor = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))
    point_ring: torch.Tensor | None = None
    point_instance: torch.Tensor | None = None
    instance_map: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = self.calibration.intrinsics
        if self.image is not None:
            if self.image.dim() != 3 or self.image.shape[0] != 3:
                raise ValueError(f"Frame.image must be [3, H, W], got {tuple(self.image.shape)}")
            if self.image.shape[1:] != (k.height, k.width):
                raise ValueError(
                    f"Frame.image is {self.image.shape[2]}x{self.image.shape[1]} but the "
                    f"calibration says {k.width}x{k.height}"
                )
        if self.points is not None:
            if self.points.dim() != 2 or self.points.shape[1] != 4:
                raise ValueError(f"Frame.points must be [N, 4], got {tuple(self.points.shape)}")
            n = self.points.shape[0]
            for name in ("point_ring", "point_instance"):
                extra = getattr(self, name)
                if extra is not None and extra.shape[0] != n:
                    raise ValueError(f"Frame.{name} must have one entry per point")

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        k = self.calibration.intrinsics
        return k.width, k.height
