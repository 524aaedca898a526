"""The embedded simulator: a world from a scene description, the ego's motion, and Frames."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from avrobust.core.attachment import Attachment
from avrobust.core.calibration import Calibration, CameraIntrinsics
from avrobust.core.frame import Frame
from avrobust.core.seeding import make_generator, seed_from_id
from avrobust.core.sensors import CameraSpec, LidarSpec
from avrobust.core.weather import Weather
from avrobust.sim.attachments import attach
from avrobust.sim.camera import CameraOutput, CameraRenderer
from avrobust.sim.lidar import LidarOutput, LidarRenderer
from avrobust.sim.lighting import lighting
from avrobust.sim.scene import SceneDescription, build_world, world_pose
from avrobust.sim.surfaces import surface_views
from avrobust.sim.truth import TruthBuilder
from avrobust.sim.world import cast_rays


@dataclass
class RawFrame:
    """A Frame plus the renderers' own outputs (for benchmarks and debugging views)."""

    frame: Frame
    camera: CameraOutput | None
    lidar: LidarOutput | None


class Simulator:
    """Renders frames of one scene under one weather with one sensor set.

    Args:
        scene: what to build.
        camera: camera spec, or None for a LiDAR-only run.
        lidar: LiDAR spec, or None for a camera-only run.
        weather: the weather (CARLA field names).
        seed: seed of the sensors' randomness; in frame ``i`` the camera and the LiDAR draw from
            streams of their own seeded from ``f"{seed}:{i}"``.
        attachments: textured meshes fixed to objects of the scene (an adversarial object on
            its host), drawn by both sensors; each is an attack surface of its own name.
    """

    def __init__(
        self,
        scene: SceneDescription,
        camera: CameraSpec | None = CameraSpec(),
        lidar: LidarSpec | None = LidarSpec(),
        weather: Weather = Weather(),
        seed: int = 0,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        self.scene = scene
        self.world = build_world(scene)
        for attachment in attachments:  # before the renderers read the world's materials
            attach(self.world, attachment)
        self.weather = weather
        self.light = lighting(weather)
        self.seed = seed
        self.camera_spec = camera
        self.lidar_spec = lidar
        self.camera = CameraRenderer(self.world, camera) if camera is not None else None
        self.lidar = LidarRenderer(self.world, lidar) if lidar is not None else None
        self.truth = TruthBuilder(self.world)
        intr = camera.intrinsics() if camera is not None else CameraIntrinsics(1, 1, 1, 1, 0, 0)
        self.calibration = Calibration(
            intr,
            camera_pose=(camera.mount if camera else CameraSpec().mount).pose(),
            lidar_pose=(lidar.mount if lidar else LidarSpec().mount).pose(),
        )

    def ego_pose(self, t: float) -> torch.Tensor:
        """``[4, 4]`` float64 world-from-ego pose at time ``t``."""
        e = self.scene.ego
        if e.world_pose is not None:
            start = world_pose(*e.world_pose)
            start[:3, 3] += start[:3, 0] * e.speed * t
            return torch.from_numpy(start)
        lateral = self.scene.road.lane_lateral(e.lane) + e.lateral_offset
        yaw = 0.0 if e.lane < 0 else torch.pi
        direction = 1.0 if e.lane < 0 else -1.0
        return torch.from_numpy(
            self.scene.road.pose(e.s0 + direction * e.speed * t, lateral, 0.0, yaw)
        )

    def fire_triggers(self, t: float, ego: torch.Tensor) -> None:
        """Start the behaviours whose trigger holds with the ego at ``ego`` at time ``t``
        (frames are rendered in order, so the first such frame fixes the trigger time)."""
        ex, ey = float(ego[0, 3]), float(ego[1, 3])
        for name, profile in self.world.behaviours.items():
            own = self.world.objects[name].pose_at(t)
            profile.check(t, (ex, ey), (float(own[0, 3]), float(own[1, 3])))

    def ego_lane(self, step: float = 1.0) -> np.ndarray:
        """``[N, 2]`` world points ``step`` metres apart along the ego's lane centre (plus its
        lateral offset), from its start to the end of the road (or 500 m straight ahead for a
        world pose)."""
        e = self.scene.ego
        if e.world_pose is not None:
            x, y, yaw = e.world_pose
            d = np.arange(0.0, 500.0 + step, step)
            return np.stack([x + d * np.cos(yaw), y + d * np.sin(yaw)], axis=1)
        road = self.scene.road
        lateral = road.lane_lateral(e.lane) + e.lateral_offset
        end = road.length if e.lane < 0 else 0.0
        s = np.arange(e.s0, end, step if e.lane < 0 else -step)
        s = np.append(s, end)
        return np.array([road.to_world(float(q), lateral)[:2] for q in s])

    def ego_velocity(self, t: float, dt: float = 0.01) -> torch.Tensor:
        return (self.ego_pose(t + dt)[:3, 3] - self.ego_pose(t)[:3, 3]) / dt

    def render(
        self,
        t: float,
        index: int = 0,
        textures: dict[str, torch.Tensor] | None = None,
        truth: bool = True,
        ego_pose: torch.Tensor | None = None,
    ) -> RawFrame:
        """Render the frame at time ``t``.

        Args:
            textures: attack-surface textures by surface name (may require grad).
            truth: compute ground truth and surface views (not needed for attack steps).
            ego_pose: override the route's pose (viewpoint sweeps place the ego freely).
        """
        ego = self.ego_pose(t) if ego_pose is None else ego_pose.to(torch.float64)
        self.fire_triggers(t, ego)
        geometry = self.world.geometry_at(t)
        # Each sensor its own stream: one sensor's noise does not depend on the other's presence.
        gen = make_generator(seed_from_id(f"{self.seed}:{index}", "frame"))
        lidar_gen = make_generator(seed_from_id(f"{self.seed}:{index}", "lidar"))
        cam_out = lidar_out = None
        image = points = None
        cam_pose = ego @ self.calibration.camera_pose
        lidar_pose = ego @ self.calibration.lidar_pose
        cam_cast = lidar_cast = None
        if self.camera is not None and self.lidar is not None:
            # Both sensors' rays in one cast: one Open3D call costs less than two.
            n = self.camera.num_rays
            rays = torch.empty(n + self.lidar.num_rays, 6)
            self.camera.fill_rays(cam_pose, rays[:n])
            self.lidar.fill_rays(lidar_pose, rays[n:])
            hit = cast_rays(geometry.scene, rays)
            cam_cast = (rays[:n], {k: v[:n] for k, v in hit.items()})
            lidar_cast = (rays[n:], {k: v[n:] for k, v in hit.items()})
        if self.camera is not None:
            cam_out = self.camera.render(
                geometry,
                cam_pose,
                self.light,
                gen,
                textures,
                ego,
                self.ego_velocity(t) if self.camera.spec.motion_blur > 0 else None,
                maps=truth,
                cast=cam_cast,
            )
            image = cam_out.image
        if self.lidar is not None:
            lidar_out = self.lidar.render(geometry, lidar_pose, self.light, lidar_gen, lidar_cast)
            points = lidar_out.points
        frame = Frame(
            calibration=self.calibration,
            image=image,
            points=points,
            index=index,
            timestamp=t,
            ego_pose=ego,
            point_ring=None if lidar_out is None else lidar_out.ring,
            point_instance=None if lidar_out is None else lidar_out.instance,
            instance_map=None if cam_out is None else cam_out.instance,
            depth=None if cam_out is None else cam_out.depth,
            metadata={
                "scene": self.scene.name,
                "weather": self.weather.to_dict(),
                "seed": self.seed,
                "backend": "embedded",
            },
        )
        if truth:
            frame.truth = self.truth.build(geometry, self.calibration, ego, cam_out, lidar_out)
            if cam_out is not None:
                frame.surfaces = surface_views(
                    self.world, geometry, self.calibration, ego, cam_out, self.light
                )
        return RawFrame(frame, cam_out, lidar_out)
