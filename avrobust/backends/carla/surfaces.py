"""Attack surfaces of a CARLA frame: each sign face as a ``SurfaceView`` (its corners in the
image, the pixels it covers, its distance and viewing angle), so campaigns on CARLA count the
pixels an attack gets, as on the embedded simulator.

The face is the scenario's sign face (its size by sign type, its plate's lower edge at the
scenario's height) standing where the map's matched sign object stands, facing the way the
scenario turns it. CARLA does not report a plate's geometry, so this is the scenario's plate
at the map sign, not the mesh's exact outline; vehicles in front of it are cut out of the mask
with the instance camera.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from avrobust.core.calibration import Calibration
from avrobust.core.conventions import invert_pose
from avrobust.core.signs import ALL_SIGN_TYPES
from avrobust.core.surface import SurfaceView

# Side of the square each sign type's face texture covers, metres: the embedded simulator's
# catalogue (a 900 mm stop octagon, 750 mm circles), so both backends paint the same faces.
FACE_SIZE = {name: round(t.face_extent, 6) for name, t in ALL_SIGN_TYPES.items()}


def face_corners(pose: np.ndarray, size: float, height: float) -> np.ndarray:
    """``[4, 3]`` world corners top-left, top-right, bottom-right, bottom-left as seen from the
    front, of a square face of side ``size`` whose lower edge is ``height`` above the pose, the
    face looking along the pose's +x."""
    y_axis, z_axis = pose[:3, 1], pose[:3, 2]
    centre = pose[:3, 3] + z_axis * (height + size / 2)
    half = size / 2
    # Seen from the front (looking along -x) the viewer's right is the plate's +y.
    return np.stack(
        [
            centre - half * y_axis + half * z_axis,
            centre + half * y_axis + half * z_axis,
            centre + half * y_axis - half * z_axis,
            centre - half * y_axis - half * z_axis,
        ]
    )


def sign_face_view(
    name: str,
    object_id: int,
    corners_world: np.ndarray,
    normal_world: np.ndarray,
    size: float,
    world_from_ego: torch.Tensor,
    calibration: Calibration,
    occluders: torch.Tensor | None = None,
) -> SurfaceView:
    """The face as seen by the camera; ``occluders``: ``[H, W]`` bool pixels of actors."""
    k = calibration.intrinsics
    lidar_from_world = invert_pose(world_from_ego @ calibration.lidar_pose)
    homo = torch.cat([torch.from_numpy(corners_world), torch.ones(4, 1, dtype=torch.float64)], 1)
    local = (lidar_from_world @ homo.T).T[:, :3].float()
    cam = calibration.lidar_points_to_camera(local)
    uv, depth = calibration.project(cam)
    mask = np.zeros((k.height, k.width), np.float32)
    if bool((depth > 0.1).all()):
        cv2.fillConvexPoly(mask, np.round(uv.numpy()).astype(np.int32), 1.0)
    if occluders is not None:
        mask[occluders.numpy()] = 0.0
    centre_cam = cam.mean(0)
    # Camera position in the world: the face normal against the direction to the camera.
    world_from_camera = world_from_ego @ calibration.camera_pose
    to_cam = world_from_camera[:3, 3].numpy() - corners_world.mean(0)
    cosang = float(np.dot(to_cam, normal_world) / max(np.linalg.norm(to_cam), 1e-9))
    return SurfaceView(
        name,
        object_id,
        uv,
        torch.from_numpy(mask),
        torch.ones(3),
        torch.zeros(3),
        (size, size),
        float(torch.linalg.vector_norm(centre_cam)),
        math.acos(max(-1.0, min(1.0, cosang))),
    )
