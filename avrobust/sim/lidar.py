"""The rotating LiDAR: one ray per laser and column, cast with Open3D.

Intensity follows the return-power model: reflectivity times the cosine of incidence, attenuated
by the atmosphere (CARLA's ``exp(-rate * r)``) and by fog and rain on the way out and back.
Returns too weak to detect are lost, so fog and rain thin the cloud with range. Fog backscatter
and raindrops add spurious near returns that replace the genuine return on their rays, as the
first return of a real sensor would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avrobust.core.sensors import LidarSpec, clear_air_intensity
from avrobust.sim.lighting import Lighting
from avrobust.sim.world import SceneGeometry, World, cast


@dataclass
class LidarOutput:
    """One sweep.

    Attributes:
        points: ``[N, 4]`` float32 ``(x, y, z, intensity)`` in the sensor frame.
        ring: ``[N]`` int64 laser index (0: the top laser).
        instance: ``[N]`` int64 instance id hit (0: spurious weather return).
        ray: ``[N]`` int64 index of the ray in ``LidarSpec.ray_directions()`` (ring-major), so
            attacks can replace returns along their original rays.
    """

    points: torch.Tensor
    ring: torch.Tensor
    instance: torch.Tensor
    ray: torch.Tensor


class LidarRenderer:
    def __init__(self, world: World, spec: LidarSpec) -> None:
        self.world = world
        self.spec = spec
        self.dirs = spec.ray_directions()
        self.ring = torch.arange(spec.channels).repeat_interleave(spec.columns)
        self.reflectivity = torch.tensor([m.reflectivity for m in world.materials.values()])

    def render(
        self,
        geometry: SceneGeometry,
        lidar_pose: torch.Tensor,
        light: Lighting,
        generator: torch.Generator,
    ) -> LidarOutput:
        """One sweep from the sensor at ``lidar_pose`` (``[4, 4]`` world-from-sensor)."""
        spec = self.spec
        pose = lidar_pose.to(torch.float32)
        dirs_w = self.dirs @ pose[:3, :3].T
        n = dirs_w.shape[0]
        hit = cast(geometry.scene, pose[:3, 3].expand(n, 3), dirs_w)
        r = hit["t_hit"]
        ok = torch.isfinite(r) & (r <= spec.range)
        prim = hit["prim"].clamp(min=0)
        mat = geometry.tri_material.index_select(0, prim)
        inst = torch.where(ok, geometry.tri_instance.index_select(0, prim), torch.zeros_like(prim))
        normal = F.normalize(hit["normal"], dim=1)
        cos_inc = (normal * dirs_w).sum(1).abs()

        beta = 0.9 * light.fog_beta + 0.004 * light.rain  # per metre at 905 nm
        r_safe = torch.where(ok, r, torch.zeros_like(r))
        intensity = clear_air_intensity(
            self.reflectivity.index_select(0, mat), cos_inc, r_safe, spec
        ) * torch.exp(-2 * beta * r_safe)
        ok &= intensity >= spec.min_intensity

        # Weather returns: fog backscatter and raindrops, closer than the genuine hit.
        # The sweep's uniform draws in one call: [what kind of spurious return, fog range,
        # rain range, spurious intensity, drop-off].
        u, fog_u, rain_u, weak_u, drop_u = torch.rand(5, n, generator=generator)
        p_fog = min(0.3, 25.0 * light.fog_beta**2)  # backscatter grows steeply in dense fog
        p_rain = 0.015 * light.rain
        fog_r = -torch.log(fog_u.clamp(min=1e-6)) / max(2 * beta, 1e-3)
        fog_r = fog_r.clamp(1.0, 25.0)
        rain_r = 1.0 + 14.0 * rain_u
        spurious_r = torch.where(u < p_fog, fog_r, rain_r)
        spurious = (u < p_fog + p_rain) & (spurious_r < torch.where(ok, r, torch.full_like(r, 1e9)))
        spurious &= spurious_r <= spec.range
        r = torch.where(spurious, spurious_r, r)
        intensity = torch.where(spurious, 0.03 + 0.1 * weak_u, intensity)
        inst = torch.where(spurious, torch.zeros_like(inst), inst)
        ok = ok | spurious

        # CARLA's drop-off: random drops except for strong returns; rain drops more.
        general = spec.dropoff_general_rate + 0.25 * light.rain
        dropped = (drop_u < general) & (intensity <= spec.dropoff_intensity_limit)
        dropped |= (intensity <= 1e-6) & (drop_u < spec.dropoff_zero_intensity)
        ok &= ~dropped

        if spec.noise_stddev > 0:
            r = r + torch.randn(n, generator=generator) * spec.noise_stddev
        keep = torch.nonzero(ok).flatten()
        xyz = self.dirs.index_select(0, keep) * r.index_select(0, keep)[:, None]
        points = torch.cat([xyz, intensity.index_select(0, keep).clamp(0, 1)[:, None]], dim=1)
        return LidarOutput(
            points, self.ring.index_select(0, keep), inst.index_select(0, keep), keep
        )
