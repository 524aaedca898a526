"""Coordinate conventions and rigid transforms.

Frames used throughout avrobust (all right-handed, metres, radians):

* **ego / sensor body frame**: x forward, y left, z up (as KITTI's LiDAR). The ego vehicle, the
  LiDAR and the camera body all use it. Yaw turns x towards y (counter-clockwise seen from above).
* **camera optical frame**: x right, y down, z forward (OpenCV, KITTI ``cam``). Pixels are
  ``(u, v)`` with ``u`` to the right and ``v`` down; the centre of the top-left pixel is (0.5, 0.5).
* **CARLA**: left-handed, x forward, y right, z up; converted by ``backends.carla`` in one tested
  function and nowhere else.

A pose ``T_a_b`` is a 4x4 homogeneous matrix that maps points in frame ``b`` to frame ``a``.
"""

from __future__ import annotations

import math

import torch

#: Maps a camera body-frame vector (x fwd, y left, z up) to the optical frame (x right, y down,
#: z fwd).
BODY_TO_OPTICAL = torch.tensor(
    [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], dtype=torch.float64
)


def rotation_matrix(roll: float, pitch: float, yaw: float, dtype=torch.float64) -> torch.Tensor:
    """Rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` in the x-forward, y-left, z-up frame.

    Positive pitch tilts the x axis down (towards -z), as a camera looking at the road would
    pitch, which is ``Ry(+pitch)`` in a right-handed frame.

    Returns:
        ``[3, 3]`` tensor.
    """
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = torch.tensor([[1, 0, 0], [0, cr, -sr], [0, sr, cr]], dtype=dtype)
    ry = torch.tensor([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]], dtype=dtype)
    rz = torch.tensor([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]], dtype=dtype)
    return rz @ ry @ rx


def make_pose(
    translation: tuple[float, float, float] | torch.Tensor = (0.0, 0.0, 0.0),
    roll: float = 0.0,
    pitch: float = 0.0,
    yaw: float = 0.0,
    dtype=torch.float64,
) -> torch.Tensor:
    """A 4x4 pose from a translation and roll, pitch, yaw (radians).

    Returns:
        ``[4, 4]`` tensor mapping child-frame points to the parent frame.
    """
    pose = torch.eye(4, dtype=dtype)
    pose[:3, :3] = rotation_matrix(roll, pitch, yaw, dtype=dtype)
    pose[:3, 3] = torch.as_tensor(translation, dtype=dtype)
    return pose


def invert_pose(pose: torch.Tensor) -> torch.Tensor:
    """Inverse of a rigid ``[..., 4, 4]`` pose, without a general matrix inverse."""
    rot = pose[..., :3, :3]
    trans = pose[..., :3, 3:]
    out = torch.zeros_like(pose)
    rot_t = rot.transpose(-1, -2)
    out[..., :3, :3] = rot_t
    out[..., :3, 3:] = -rot_t @ trans
    out[..., 3, 3] = 1.0
    return out


def transform_points(pose: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply a ``[4, 4]`` pose to ``[..., 3]`` points (extra columns are not allowed here).

    The result has the dtype of ``points``.
    """
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape [..., 3], got {tuple(points.shape)}")
    pose = pose.to(points.dtype)
    return points @ pose[:3, :3].T + pose[:3, 3]


def wrap_angle(angle: torch.Tensor) -> torch.Tensor:
    """Wrap angles to ``[-pi, pi)``."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


# --- CARLA ------------------------------------------------------------------------------------
# CARLA (Unreal) is left-handed: x forward, y right, z up, angles in degrees with pitch positive
# nose-up and yaw positive turning right. CARLA's own RightHandedRotation documents the mapping
# to the right-handed x-forward, y-left frame used here: roll = roll, pitch = -pitch,
# yaw = -yaw (its own inverse). These two functions are the only place it is done.


def from_carla(
    x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """A CARLA location (metres) and rotation (degrees) as ours: ``((x, y, z), (roll, pitch,
    yaw))`` in metres and radians."""
    return (x, -y, z), (math.radians(roll), -math.radians(pitch), -math.radians(yaw))


def to_carla(
    x: float, y: float, z: float, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Our position (metres) and rotation (radians) as CARLA's: ``((x, y, z), (roll, pitch,
    yaw))`` in metres and degrees. The inverse of :func:`from_carla`."""
    return (x, -y, z), (math.degrees(roll), -math.degrees(pitch), -math.degrees(yaw))


def carla_points_to_ours(points: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` CARLA LiDAR points (x, y right, z, intensity) in our frame (y left)."""
    out = points.clone()
    out[:, 1] = -out[:, 1]
    return out
