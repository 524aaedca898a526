"""SurfaceViews: where each attack surface appears in a rendered frame, and how it is lit."""

from __future__ import annotations

import math

import numpy as np
import torch

from avrobust.core.calibration import Calibration
from avrobust.core.conventions import invert_pose
from avrobust.core.surface import SurfaceView
from avrobust.sim.camera import CameraOutput
from avrobust.sim.lighting import Lighting
from avrobust.sim.world import SceneGeometry, World

LUMA = torch.tensor([0.2126, 0.7152, 0.0722])


def surface_views(
    world: World,
    geometry: SceneGeometry,
    calibration: Calibration,
    ego_pose: torch.Tensor,
    camera: CameraOutput,
    light: Lighting,
) -> dict[str, SurfaceView]:
    """One :class:`SurfaceView` per attack surface of the world (visible or not)."""
    out: dict[str, SurfaceView] = {}
    names = world.material_names
    world_from_cam = (ego_pose @ calibration.camera_pose).to(torch.float64)
    cam_from_world = calibration.ego_to_camera @ invert_pose(ego_pose.to(torch.float64))
    cam_pos = world_from_cam[:3, 3].numpy()
    for name, surf in world.surfaces.items():
        pose = geometry.poses[surf.object_name]
        corners_w = surf.corners @ pose[:3, :3].T + pose[:3, 3]
        normal_w = pose[:3, :3] @ surf.normal
        pts = (
            torch.as_tensor(corners_w, dtype=torch.float64) @ cam_from_world[:3, :3].T
            + cam_from_world[:3, 3]
        )
        quad, _ = calibration.project(pts)
        mask = (camera.material == names.index(name)).float()
        centre = corners_w.mean(0)
        to_cam = cam_pos - centre
        distance = float(np.linalg.norm(to_cam))
        cos_view = float(np.dot(normal_w, to_cam) / max(distance, 1e-9))
        view_angle = math.acos(max(-1.0, min(1.0, cos_view)))
        sel = mask > 0.5
        if sel.any():
            gain_px = camera.gain[sel]
            gain = gain_px.mean(0)
            offset = camera.offset[sel].mean(0)
            shading = torch.ones_like(mask)
            rel = (gain_px @ LUMA) / max(float(gain @ LUMA), 1e-6)
            shading[sel] = rel
        else:
            # Not visible: the light it would receive, unshadowed, for a compositor that asks.
            n = torch.as_tensor(normal_w, dtype=torch.float32)
            irr = (
                light.sun * float((n @ light.sun_dir).clamp(min=0))
                + (0.55 + 0.45 * float(n[2])) * light.ambient
            )
            trans = math.exp(-light.fog_beta * max(0.0, distance - light.fog_start))
            gain = irr * trans * camera.exposure
            offset = light.airlight * (1 - trans) * camera.exposure
            shading = None
        out[name] = SurfaceView(
            name=name,
            object_id=world.objects[surf.object_name].instance_id,
            quad=quad.float(),
            mask=mask,
            gain=gain,
            offset=offset,
            size_m=surf.size_m,
            distance=distance,
            view_angle=view_angle,
            shading=shading,
        )
    return out
