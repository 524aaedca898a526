"""Camera intrinsics and the calibration that ties camera, LiDAR and ego together.

Pixel convention: pixel ``(i, j)`` (column, row) covers ``[i, i+1) x [j, j+1)``; its centre is
``(i + 0.5, j + 0.5)``. With ``cx = width / 2`` the principal point is the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from avrobust.core.conventions import BODY_TO_OPTICAL, invert_pose, transform_points
from avrobust.core.errors import ConfigError


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a camera with square or rectangular pixels (no distortion)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(
                f"image size must be positive, got {self.width}x{self.height}",
                field="camera.resolution",
            )
        if self.fx <= 0 or self.fy <= 0:
            raise ConfigError("focal lengths must be positive", field="camera.fx/fy")

    @classmethod
    def from_fov(cls, width: int, height: int, hfov: float) -> CameraIntrinsics:
        """Intrinsics from a resolution and a horizontal field of view in radians, as CARLA's
        ``sensor.camera.rgb`` defines them (square pixels, centred principal point)."""
        if not 0.0 < hfov < math.pi:
            raise ConfigError(
                "horizontal field of view must be in (0, 180) degrees, "
                f"got {math.degrees(hfov):.3g}",
                field="camera.fov",
                allowed="0 < fov < 180 degrees",
            )
        f = width / (2.0 * math.tan(hfov / 2.0))
        return cls(width, height, f, f, width / 2.0, height / 2.0)

    @classmethod
    def from_matrix(cls, k: torch.Tensor, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics from a ``[3, 3]`` camera matrix."""
        k = torch.as_tensor(k, dtype=torch.float64)
        if k.shape != (3, 3):
            raise ConfigError(f"camera matrix must be 3x3, got {tuple(k.shape)}", field="camera.K")
        return cls(width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]))

    @property
    def matrix(self) -> torch.Tensor:
        """The ``[3, 3]`` camera matrix K (float64)."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=torch.float64
        )

    @property
    def hfov(self) -> float:
        """Horizontal field of view in radians."""
        return 2.0 * math.atan(self.width / (2.0 * self.fx))

    def scaled(self, factor: float) -> CameraIntrinsics:
        """Intrinsics of the same camera at ``factor`` times the resolution."""
        return CameraIntrinsics(
            round(self.width * factor),
            round(self.height * factor),
            self.fx * factor,
            self.fy * factor,
            self.cx * factor,
            self.cy * factor,
        )


def _pose(value: torch.Tensor | None) -> torch.Tensor:
    if value is None:
        return torch.eye(4, dtype=torch.float64)
    value = torch.as_tensor(value, dtype=torch.float64)
    if value.shape != (4, 4):
        raise ConfigError(f"a pose must be a 4x4 matrix, got {tuple(value.shape)}", field="pose")
    return value


@dataclass
class Calibration:
    """Camera intrinsics plus the poses of the camera and LiDAR on the ego vehicle.

    Attributes:
        intrinsics: the camera's pinhole model.
        camera_pose: ``[4, 4]`` float64, ``T_ego_camera``: camera body frame (x fwd, y left,
            z up) to ego frame.
        lidar_pose: ``[4, 4]`` float64, ``T_ego_lidar``: LiDAR frame to ego frame.
    """

    intrinsics: CameraIntrinsics
    camera_pose: torch.Tensor = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))
    lidar_pose: torch.Tensor = field(default_factory=lambda: torch.eye(4, dtype=torch.float64))

    def __post_init__(self) -> None:
        self.camera_pose = _pose(self.camera_pose)
        self.lidar_pose = _pose(self.lidar_pose)

    # --- frame changes -------------------------------------------------------------------
    @property
    def ego_to_camera(self) -> torch.Tensor:
        """``[4, 4]`` transform from the ego frame to the camera optical frame."""
        body_to_optical = torch.eye(4, dtype=torch.float64)
        body_to_optical[:3, :3] = BODY_TO_OPTICAL
        return body_to_optical @ invert_pose(self.camera_pose)

    @property
    def lidar_to_camera(self) -> torch.Tensor:
        """``[4, 4]`` transform from the LiDAR frame to the camera optical frame (KITTI's
        ``Tr_velo_to_cam``)."""
        return self.ego_to_camera @ self.lidar_pose

    @property
    def camera_to_lidar(self) -> torch.Tensor:
        """``[4, 4]`` transform from the camera optical frame to the LiDAR frame."""
        return invert_pose(self.lidar_to_camera)

    def lidar_points_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` (or ``[..., 4]`` with intensity, dropped) LiDAR points to optical frame."""
        return transform_points(self.lidar_to_camera, points[..., :3])

    def camera_points_to_lidar(self, points: torch.Tensor) -> torch.Tensor:
        """``[..., 3]`` optical-frame points to the LiDAR frame."""
        return transform_points(self.camera_to_lidar, points)

    # --- projection ----------------------------------------------------------------------
    def project(self, points_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project ``[..., 3]`` optical-frame points to pixels.

        Returns:
            ``uv`` ``[..., 2]`` and ``depth`` ``[...]`` (z in metres). Points with ``depth <= 0``
            are behind the camera; their ``uv`` is meaningless (divided by a clamped depth).
            Differentiable with respect to the points.
        """
        k = self.intrinsics
        z = points_cam[..., 2]
        zc = z.clamp(min=1e-6)
        u = k.fx * points_cam[..., 0] / zc + k.cx
        v = k.fy * points_cam[..., 1] / zc + k.cy
        return torch.stack([u, v], dim=-1), z

    def unproject(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`: pixels ``[..., 2]`` at ``depth`` ``[...]`` to optical-frame
        points ``[..., 3]``."""
        k = self.intrinsics
        x = (uv[..., 0] - k.cx) / k.fx * depth
        y = (uv[..., 1] - k.cy) / k.fy * depth
        return torch.stack([x, y, depth], dim=-1)

    def project_lidar(
        self, points: torch.Tensor, min_depth: float = 0.1
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project LiDAR points ``[N, 3|4]`` into the image.

        Returns:
            ``uv`` ``[N, 2]``, ``depth`` ``[N]``, and ``visible`` ``[N]`` bool: in front of the
            camera by at least ``min_depth`` and inside the image.
        """
        uv, depth = self.project(self.lidar_points_to_camera(points))
        k = self.intrinsics
        visible = (
            (depth > min_depth)
            & (uv[:, 0] >= 0)
            & (uv[:, 0] < k.width)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] < k.height)
        )
        return uv, depth, visible

    def pixel_rays(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Unit ray directions through every pixel centre, in the camera body frame.

        Returns:
            ``[H, W, 3]`` float32 (x fwd, y left, z up).
        """
        k = self.intrinsics
        v, u = torch.meshgrid(
            torch.arange(k.height, dtype=torch.float64) + 0.5,
            torch.arange(k.width, dtype=torch.float64) + 0.5,
            indexing="ij",
        )
        optical = torch.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, torch.ones_like(u)], dim=-1)
        body = optical @ BODY_TO_OPTICAL  # optical -> body is the transpose
        body = body / body.norm(dim=-1, keepdim=True)
        return body.to(device=device, dtype=torch.float32)
