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

from avrobust.core.sensors import LidarSpec, clear_air_intensity
from avrobust.sim.lighting import Lighting
from avrobust.sim.world import SceneGeometry, World, cast_rays


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
        self._dirs_t = self.dirs.T.contiguous()
        self.ring = torch.arange(spec.channels).repeat_interleave(spec.columns)
        self.reflectivity = torch.tensor([m.reflectivity for m in world.materials.values()])

    @property
    def num_rays(self) -> int:
        """Rays per sweep (channels times columns)."""
        return self.dirs.shape[0]

    def fill_rays(self, lidar_pose: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the sweep's rays from ``lidar_pose`` into ``out`` (``[num_rays, 6]``,
        Open3D's layout) and return it."""
        pose = lidar_pose.to(torch.float32)
        out[:, :3] = pose[:3, 3]
        out[:, 3:] = (pose[:3, :3] @ self._dirs_t).T  # R @ [3, N] is the fast product
        return out

    def render(
        self,
        geometry: SceneGeometry,
        lidar_pose: torch.Tensor,
        light: Lighting,
        generator: torch.Generator,
        cast: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None,
    ) -> LidarOutput:
        """One sweep from the sensor at ``lidar_pose`` (``[4, 4]`` world-from-sensor).
        ``cast``: this sweep's rays (:meth:`fill_rays`) and their hits when the caller cast
        them together with other rays; cast here when None."""
        spec = self.spec
        n = self.num_rays
        if cast is None:
            rays = self.fill_rays(lidar_pose, torch.empty(n, 6))
            hit = cast_rays(geometry.scene, rays)
        else:
            rays, hit = cast
        dirs_w = rays[:, 3:]
        r = hit["t_hit"]
        ok = torch.isfinite(r) & (r <= spec.range)
        prim = hit["prim"].clamp(min=0)
        mat = geometry.tri_material.index_select(0, prim)
        inst = torch.where(ok, geometry.tri_instance.index_select(0, prim), torch.zeros_like(prim))
        cos_inc = (hit["normal"] * dirs_w).sum(1).abs()  # Open3D's normals are unit

        beta = 0.9 * light.fog_beta + 0.004 * light.rain  # per metre at 905 nm
        r_safe = torch.where(ok, r, torch.zeros_like(r))
        intensity = clear_air_intensity(
            self.reflectivity.index_select(0, mat), cos_inc, r_safe, spec
        ) * torch.exp(-2 * beta * r_safe)
        ok &= intensity >= spec.min_intensity

        # Weather returns: fog backscatter and raindrops, closer than the genuine hit. One
        # uniform draw per ray picks the rays that get one and another decides drop-off; the
        # candidates' range and intensity are drawn for them alone (few in clear air).
        u, drop_u = torch.rand(2, n, generator=generator)
        p_fog = min(0.3, 25.0 * light.fog_beta**2)  # backscatter grows steeply in dense fog
        p_rain = 0.015 * light.rain
        cand = torch.nonzero(u < p_fog + p_rain).flatten()
        if cand.numel():
            fog_u, rain_u, weak_u = torch.rand(3, cand.numel(), generator=generator)
            fog_r = -torch.log(fog_u.clamp(min=1e-6)) / max(2 * beta, 1e-3)
            fog_r = fog_r.clamp(1.0, 25.0)
            rain_r = 1.0 + 14.0 * rain_u
            spurious_r = torch.where(u.index_select(0, cand) < p_fog, fog_r, rain_r)
            genuine_r = torch.where(ok, r, torch.full_like(r, 1e9)).index_select(0, cand)
            closer = (spurious_r < genuine_r) & (spurious_r <= spec.range)
            cand, spurious_r, weak_u = cand[closer], spurious_r[closer], weak_u[closer]
            r = r.index_copy(0, cand, spurious_r)
            intensity = intensity.index_copy(0, cand, 0.03 + 0.1 * weak_u)
            inst = inst.index_fill(0, cand, 0)
            ok = ok.index_fill(0, cand, True)

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
