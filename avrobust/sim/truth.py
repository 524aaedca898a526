"""Ground truth of a frame: 3D boxes in the LiDAR frame, 2D boxes from visible pixels, visible
fraction, and LiDAR point counts."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import torch

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.conventions import invert_pose
from avrobust.core.frame import GroundTruth
from avrobust.sim.camera import CameraOutput
from avrobust.sim.lidar import LidarOutput
from avrobust.sim.world import SceneGeometry, SimObject, World, cast


class TruthBuilder:
    """Computes :class:`GroundTruth`; caches one small ray-casting scene per object (in its own
    frame) to measure how much of it occluders hide."""

    def __init__(self, world: World, max_range: float = 150.0) -> None:
        self.world = world
        self.max_range = max_range
        self._object_scenes: dict[str, o3d.t.geometry.RaycastingScene] = {}
        # Per camera: pixel rays and pixel coordinates, the same every frame.
        self._pixels: tuple[object, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def _pixel_tables(self, calibration: Calibration):
        """``(rays [H, W, 3], u [H*W], v [H*W])`` for the calibration's camera, cached."""
        intr = calibration.intrinsics
        if self._pixels is None or self._pixels[0] != intr:
            vv, uu = torch.meshgrid(
                torch.arange(intr.height), torch.arange(intr.width), indexing="ij"
            )
            self._pixels = (intr, calibration.pixel_rays(), uu.flatten(), vv.flatten())
        return self._pixels[1:]

    def _object_scene(self, obj: SimObject) -> o3d.t.geometry.RaycastingScene:
        if obj.name not in self._object_scenes:
            from avrobust.sim.meshes import Mesh

            parts = obj.parts if obj.box_parts is None else [obj.parts[i] for i in obj.box_parts]
            mesh = Mesh.merge([p.mesh for p in parts])
            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(
                o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                o3d.core.Tensor(mesh.triangles.astype(np.uint32)),
            )
            self._object_scenes[obj.name] = scene
        return self._object_scenes[obj.name]

    def build(
        self,
        geometry: SceneGeometry,
        calibration: Calibration,
        ego_pose: torch.Tensor,
        camera: CameraOutput | None,
        lidar: LidarOutput | None,
    ) -> GroundTruth:
        world_from_lidar = ego_pose @ calibration.lidar_pose
        lidar_from_world = invert_pose(world_from_lidar)
        ego_pos = ego_pose[:3, 3].numpy()
        objs = [o for o in self.world.objects.values() if o.labelled]
        keep, centers, sizes, yaws = [], [], [], []
        for o in objs:
            pose = geometry.poses[o.name]
            c_local, size = o.local_box()
            c_world = pose[:3, :3] @ c_local + pose[:3, 3]
            if np.linalg.norm(c_world[:2] - ego_pos[:2]) > self.max_range:
                continue
            keep.append(o)
            centers.append(c_world)
            sizes.append(size)
            yaws.append(math.atan2(pose[1, 0], pose[0, 0]))
        if not keep:
            return GroundTruth.empty()
        world_boxes = Box3D(
            torch.tensor(np.array(centers)),
            torch.tensor(np.array(sizes)),
            torch.tensor(yaws, dtype=torch.float64),
        )
        boxes = world_boxes.transform(lidar_from_world)
        ids = torch.tensor([o.instance_id for o in keep])
        n = len(keep)
        boxes_2d = torch.zeros(n, 4)
        visible = torch.zeros(n)
        if camera is not None:
            boxes_2d, visible = self._image_truth(
                keep, ids, boxes, calibration, ego_pose, camera, geometry
            )
        num_points = torch.zeros(n, dtype=torch.int64)
        if lidar is not None and lidar.instance.numel():
            counts = torch.bincount(lidar.instance, minlength=int(ids.max()) + 1)
            num_points = counts[ids]
        return GroundTruth(
            ids,
            [o.category for o in keep],
            [o.subclass for o in keep],
            Box3D(boxes.center.float(), boxes.size.float(), boxes.yaw.float()),
            Box2D(boxes_2d),
            visible,
            num_points,
        )

    def _image_truth(self, objs, ids, boxes_lidar, calibration, ego_pose, camera, geometry):
        inst = camera.instance
        h, w = inst.shape
        n_ids = int(max(int(inst.max()), int(ids.max()))) + 1
        flat = inst.flatten()
        counts = torch.bincount(flat, minlength=n_ids)
        rays_body, uu, vv = self._pixel_tables(calibration)
        big = torch.iinfo(torch.int64).max
        umin = torch.full((n_ids,), big).scatter_reduce(0, flat, uu, "amin")
        vmin = torch.full((n_ids,), big).scatter_reduce(0, flat, vv, "amin")
        umax = torch.full((n_ids,), -1).scatter_reduce(0, flat, uu, "amax")
        vmax = torch.full((n_ids,), -1).scatter_reduce(0, flat, vv, "amax")
        vis_px = counts[ids]
        boxes_2d = torch.stack([umin[ids], vmin[ids], umax[ids] + 1, vmax[ids] + 1], 1).float()
        boxes_2d[vis_px == 0] = 0
        # Visible fraction: visible pixels over the pixels the object would cover unoccluded.
        proj, valid = boxes_lidar.project(calibration)
        proj = proj.clip(w, h).xyxy
        world_from_cam = ego_pose @ calibration.camera_pose
        visible = torch.zeros(len(objs))
        for k, o in enumerate(objs):
            if vis_px[k] == 0 or not valid[k]:
                continue
            x1, y1, x2, y2 = (int(v) for v in proj[k].round().tolist())
            x1, y1 = max(0, x1 - 1), max(0, y1 - 1)
            x2, y2 = min(w, x2 + 1), min(h, y2 + 1)
            if x2 <= x1 or y2 <= y1:
                continue
            obj_from_world = invert_pose(torch.as_tensor(geometry.poses[o.name]))
            obj_from_cam = (obj_from_world @ world_from_cam).float()
            d = rays_body[y1:y2, x1:x2].reshape(-1, 3) @ obj_from_cam[:3, :3].T
            origin = obj_from_cam[:3, 3].expand_as(d)
            full = int((cast(self._object_scene(o), origin, d)["prim"] >= 0).sum())
            visible[k] = min(1.0, float(vis_px[k]) / max(full, 1))
        return boxes_2d, visible
