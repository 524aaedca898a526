"""The camera: Open3D ray casting for visibility, PyTorch for everything after it.

Each pixel's ray is cast once; the hit's texture is looked up from its UV with ``grid_sample``
(static materials from one atlas, attack surfaces from their own tensors, so the image is
differentiable in every attack texture); it is shaded by the sun (Lambert, with a shadow ray),
sky light and, at night, the ego's headlights; then fog, glare, rain, exposure and sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avrobust.core.calibration import CameraIntrinsics
from avrobust.core.sensors import CameraSpec
from avrobust.sim.atlas import TextureAtlas, sample_texture
from avrobust.sim.lighting import Lighting
from avrobust.sim.world import SceneGeometry, World, cast_rays, occluded, occluded_rays

SHADOW_BIAS = 0.02  # metres: start shadow rays off the surface to avoid self-hits
HEADLIGHTS = ((2.0, 0.75, 0.7), (2.0, -0.75, 0.7))  # lamp positions on the ego, metres
HEADLIGHT_POWER = 9.0  # irradiance at 1 m on the lamp's axis, in the renderer's units
HEADLIGHT_COS = math.cos(math.radians(28.0))  # cone edge
LUMA = torch.tensor([0.2126, 0.7152, 0.0722])


@dataclass
class CameraOutput:
    """A rendered image and what the renderer knows about every pixel.

    Attributes:
        image: ``[3, H, W]`` float32 in [0, 1].
        depth: ``[H, W]`` distance along the optical axis (inf: sky), or None unless asked for.
        instance: ``[H, W]`` int64 instance id (0: sky), or None unless asked for.
        material: ``[H, W]`` int64 material index (-1: sky), or None unless asked for.
        gain: ``[H, W, 3]`` light times fog transmittance times exposure at each pixel: the
            factor between a texture's albedo and the pixel value (None unless asked for).
        offset: ``[H, W, 3]`` light added regardless of albedo (airlight, glare, reflections)
            times exposure (None unless asked for).
        exposure: the exposure applied.
    """

    image: torch.Tensor
    depth: torch.Tensor | None
    instance: torch.Tensor | None
    material: torch.Tensor | None
    gain: torch.Tensor | None
    offset: torch.Tensor | None
    exposure: float


class CameraRenderer:
    """Renders a :class:`World` through one camera spec. Build once per world and spec."""

    def __init__(self, world: World, spec: CameraSpec) -> None:
        self.world = world
        self.spec = spec
        self.intrinsics: CameraIntrinsics = spec.intrinsics()
        self._render_intr = (
            self.intrinsics.scaled(spec.antialias) if spec.antialias > 1 else self.intrinsics
        )
        names = world.material_names
        self.surface_material = {
            m.surface: i for i, m in enumerate(world.materials.values()) if m.surface is not None
        }
        static = [i for i, m in enumerate(world.materials.values()) if m.surface is None]
        self.atlas = TextureAtlas([world.materials[names[i]].texture for i in static])
        # Map material index -> atlas slot (-1 for attack surfaces).
        self.atlas_slot = torch.full((len(names),), -1, dtype=torch.int64)
        self.atlas_slot[torch.tensor(static, dtype=torch.int64)] = torch.arange(len(static))
        mats = list(world.materials.values())
        self.wettable = torch.tensor([m.wettable for m in mats])
        self.specular = torch.tensor([m.specular for m in mats])
        # Per material: its position in surface_material's order, -1 for static materials.
        self.surface_slot = torch.full((len(names),), -1.0)
        for slot, m_idx in enumerate(self.surface_material.values()):
            self.surface_slot[m_idx] = float(slot)
        from avrobust.core.calibration import Calibration

        self._rays_body = Calibration(self._render_intr).pixel_rays().reshape(-1, 3)
        self._rays_body_t = self._rays_body.T.contiguous()
        # The widest angle between a pixel's ray and the optical axis (x forward in the body).
        self._half_view = math.acos(float(self._rays_body[:, 0].min().clamp(-1, 1)))
        self._noise_bank: torch.Tensor | None = None

    def render(
        self,
        geometry: SceneGeometry,
        camera_pose: torch.Tensor,
        light: Lighting,
        generator: torch.Generator,
        textures: dict[str, torch.Tensor] | None = None,
        ego_pose: torch.Tensor | None = None,
        ego_velocity: torch.Tensor | None = None,
        maps: bool = True,
    ) -> CameraOutput:
        """Render one image.

        Args:
            geometry: the world's triangles at this frame's time.
            camera_pose: ``[4, 4]`` world-from-camera-body pose.
            light: lighting from the weather.
            generator: randomness for noise and rain (the frame's seeded generator).
            textures: attack-surface textures by surface name, overriding the materials'
                own; pass tensors with ``requires_grad`` to get gradients.
            ego_pose: ``[4, 4]`` world-from-ego pose, for the headlights.
            ego_velocity: ``[3]`` world-frame velocity (m/s), for motion blur.
            maps: also return depth, instance and material maps and the per-pixel ``gain`` and
                ``offset`` (ground truth and surface views need them).
        """
        textures = textures or {}
        intr = self._render_intr
        h, w = intr.height, intr.width
        pose = camera_pose.to(torch.float32)
        # The rays go straight into Open3D's [N, 6] layout. [3, 3] @ [3, N] is ten times
        # faster than [N, 3] @ [3, 3] with MKL on small K (NumPy's OpenBLAS is fast but leaves
        # threads spinning that halve the ray casting's speed); the directions must then be
        # row-major: gathers and element-wise operations mixing a column-major [N, 3] with
        # Open3D's row-major outputs run several times slower.
        origin = pose[:3, 3]
        rays = torch.empty(self._rays_body_t.shape[1], 6)
        rays[:, :3] = origin
        rays[:, 3:] = (pose[:3, :3] @ self._rays_body_t).T
        dirs = rays[:, 3:]
        hit = cast_rays(geometry.scene, rays)
        # Everything below is computed densely over all pixels (misses get harmless values and
        # are replaced by the sky at the end): gathers of hit subsets cost more than they save.
        valid = hit["prim"] >= 0
        prim = hit["prim"].clamp(min=0)
        th = torch.where(valid, hit["t_hit"], torch.zeros(()))

        # --- surface attributes (colours are channel-first, [3, N]) ---------------------------
        # One gather of a per-triangle table (index_select is several times faster than
        # advanced indexing) gives corner UVs, atlas rectangle, gloss and wetness per pixel.
        row = self._triangle_table(geometry).index_select(0, prim)
        bary = hit["bary"]
        # The table holds corner 0's UV and the two edges from it: two fused multiply-adds.
        uv = torch.addcmul(
            torch.addcmul(row[:, 0:2], row[:, 2:4], bary[:, 0:1]), row[:, 4:6], bary[:, 1:2]
        )
        albedo = self._albedo(row[:, 12], uv, row[:, 6:10], textures, valid)

        # Surfaces are two-sided: the normal that faces the camera is Open3D's unit face
        # normal times ``side`` (+1 or -1). Kept apart, as only subsets need the flipped [N, 3].
        normal = hit["normal"]
        facing = torch.bmm(normal.unsqueeze(1), dirs.unsqueeze(2)).flatten()  # fused dot
        side = torch.where(facing > 0, -1.0, 1.0)

        # --- light -----------------------------------------------------------------------
        gain_hit = self._irradiance(
            geometry, light, (origin, dirs, th), (normal, side), valid, ego_pose
        )
        spec = row[:, 10]
        if light.wet > 0:
            wet = row[:, 11] * (0.35 * light.wet)
            gain_hit = gain_hit * (1.0 - wet)
            spec = spec + wet
        radiance = albedo * gain_hit
        # Mirror the sky where a surface is glossy (glass, paint, wet road).
        glossy = torch.nonzero((spec > 0) & valid).flatten()
        reflect = None
        if glossy.numel():
            d_g = dirs.index_select(0, glossy)
            n_g = normal.index_select(0, glossy) * side.index_select(0, glossy)[:, None]
            mirror = d_g - 2 * (d_g * n_g).sum(1, keepdim=True) * n_g
            reflect = torch.zeros_like(radiance).index_copy(
                1, glossy, self._sky(light, mirror) * spec.index_select(0, glossy)
            )
            radiance = radiance + reflect

        # --- fog, then the sky where nothing was hit, and glare ---------------------------
        trans = torch.exp(-light.fog_beta * (th - light.fog_start).clamp(min=0))
        # radiance * trans + airlight * (1 - trans) in one fused operation.
        radiance = torch.lerp(light.airlight[:, None].expand_as(radiance), radiance, trans)
        sky_trans = math.exp(-light.fog_beta * 2000.0)
        miss = torch.nonzero(~valid).flatten()
        sky = self._sky(light, dirs.index_select(0, miss)) * sky_trans + light.airlight[:, None] * (
            1 - sky_trans
        )
        image = radiance.index_copy(1, miss, sky)
        glare = self._glare(
            light, geometry, origin, pose[:3, :3], self._rays_body_t, self._half_view
        )
        if glare is not None:
            image = image.index_add(1, glare[0], glare[1])

        # --- exposure (auto, from a detached luminance estimate) -------------------------------
        lum = float(LUMA @ image.detach().mean(1))
        exposure = float(min(3.5, max(0.7, 0.36 / max(lum, 1e-4)))) * self.spec.exposure
        image = (image * exposure).reshape(3, h, w)
        if light.rain > 0:
            image = self._rain(image, light.rain, generator)
        if self.spec.motion_blur > 0 and ego_velocity is not None:
            image = self._motion_blur(image, camera_pose, ego_velocity)
        if self.spec.noise_stddev > 0:
            noise = self._noise(image.numel(), generator).reshape(image.shape)
            image = torch.add(image, noise, alpha=self.spec.noise_stddev)
        image = image.clamp(0, 1)

        # --- per-pixel bookkeeping: ground truth only (attack steps and timing runs skip it) ---
        depth = instance = material = gain = offset = None
        if maps:
            forward = dirs @ pose[:3, 0]  # cosine to the optical axis
            depth = torch.where(valid, th * forward, torch.full((), float("inf"))).reshape(h, w)
            no_id = torch.zeros((), dtype=torch.int64)
            instance = torch.where(valid, geometry.tri_instance.index_select(0, prim), no_id)
            instance = instance.reshape(h, w)
            mat = geometry.tri_material.index_select(0, prim)
            material = torch.where(valid, mat, no_id - 1).reshape(h, w)
            g = torch.where(valid[None], gain_hit * trans, torch.zeros(())).detach() * exposure
            air = light.airlight[:, None] * (1 - trans)
            o = air if reflect is None else air + reflect * trans
            o = o.detach().index_copy(1, miss, sky.detach())
            if glare is not None:
                o = o.index_add(1, glare[0], glare[1])
            gain = g.reshape(3, h, w).permute(1, 2, 0)
            offset = (o * exposure).reshape(3, h, w).permute(1, 2, 0)
        out = CameraOutput(image, depth, instance, material, gain, offset, exposure)
        if self.spec.antialias > 1:
            out = _downsample(out, self.spec.antialias)
        return out

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise: a random window into a fixed bank (drawing a fresh million
        normals costs more than shading a frame); the window's start comes from ``generator``."""
        if self._noise_bank is None or self._noise_bank.numel() < 2 * n:
            self._noise_bank = torch.randn(2 * n + 4099, generator=torch.Generator().manual_seed(0))
        start = int(torch.randint(0, self._noise_bank.numel() - n, (1,), generator=generator))
        sign = 1.0 if int(torch.randint(0, 2, (1,), generator=generator)) else -1.0
        return self._noise_bank[start : start + n] * sign

    # --- pieces ---------------------------------------------------------------------------
    def _triangle_table(self, geometry: SceneGeometry) -> torch.Tensor:
        """``[T, 13]`` per triangle: corner 0's UV and the edges to corners 1 and 2 in UV (6),
        atlas rectangle in grid coordinates (4), specular (1), wettable (1), attack-surface slot
        (1, -1 for none). Cached on the geometry (a few thousand rows)."""
        cached = getattr(geometry, "_camera_table", None)
        if cached is not None and cached[0] is self:
            return cached[1]
        per_material = torch.cat(
            [
                self.atlas.grid_rects[self.atlas_slot.clamp(min=0)],
                self.specular[:, None],
                self.wettable[:, None].float(),
                self.surface_slot[:, None],
            ],
            dim=1,
        )
        uv = geometry.tri_uv.reshape(-1, 3, 2)
        edges = torch.cat([uv[:, 0], uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], dim=1)
        table = torch.cat(
            [edges, per_material.index_select(0, geometry.tri_material)],
            dim=1,
        )
        geometry._camera_table = (self, table)
        return table

    def _albedo(
        self,
        slot: torch.Tensor,
        uv: torch.Tensor,
        rects: torch.Tensor,
        textures: dict[str, torch.Tensor],
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """``[3, N]`` albedo; attack surfaces come from ``textures`` (differentiably).
        ``slot`` is each pixel's attack-surface slot (-1: none)."""
        # Sample the atlas everywhere (attack-surface pixels read slot 0 and are overwritten).
        out = self.atlas.sample_rects(rects, uv)
        # One pass over the pixels finds every surface's; each surface then picks its own.
        on_surface = torch.nonzero((slot >= 0) & valid).flatten()
        if on_surface.numel() == 0:
            return out
        slot_of = slot.index_select(0, on_surface)
        for k, name in enumerate(self.surface_material):
            sel = on_surface[slot_of == k]
            if sel.numel() == 0:
                continue
            tex = textures.get(name, self.world.materials[name].texture)
            # index_copy (out of place) keeps the result differentiable in the texture.
            out = out.index_copy(1, sel, sample_texture(tex, uv.index_select(0, sel).clamp(0, 1)))
        return out

    def _irradiance(
        self,
        geometry: SceneGeometry,
        light: Lighting,
        rays: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        normals: tuple[torch.Tensor, torch.Tensor],
        valid: torch.Tensor,
        ego_pose: torch.Tensor | None,
    ) -> torch.Tensor:
        """``[3, N]`` light arriving at each hit: sun (with shadow rays), sky, headlights.

        ``rays`` is (origin ``[3]``, directions ``[N, 3]``, hit distances ``[N]``): the hit
        points are formed only where needed (the shadow rays' starts, the headlights);
        ``normals`` is (face normals ``[N, 3]``, ``side`` ``[N]``), see :meth:`render`."""
        origin, dirs, th = rays
        normal, side = normals
        n_dot_l = ((normal @ light.sun_dir) * side).clamp(min=0)
        if float(light.sun.max()) > 0:
            lit = torch.nonzero((n_dot_l > 0) & valid).flatten()
            if lit.numel():
                # Shadow rays built in Open3D's [M, 6] layout: start off the surface, to the sun.
                shadow = torch.empty(lit.numel(), 6)
                torch.addcmul(
                    origin,
                    dirs.index_select(0, lit),
                    th.index_select(0, lit)[:, None],
                    out=shadow[:, :3],
                ).addcmul_(
                    normal.index_select(0, lit),
                    side.index_select(0, lit)[:, None],
                    value=SHADOW_BIAS,
                )
                shadow[:, 3:] = light.sun_dir
                blocked = occluded_rays(geometry.scene, shadow)
                n_dot_l = n_dot_l.index_fill(0, lit[blocked], 0.0)
        else:
            n_dot_l.zero_()
        # Sky light from the upper hemisphere: more on faces that look up.
        sky_share = torch.addcmul(torch.full((), 0.55), normal[:, 2], side, value=0.45)
        irr = torch.addcmul(
            light.ambient[:, None] * sky_share[None], light.sun[:, None], n_dot_l[None]
        )
        if light.headlights and ego_pose is not None:
            points = torch.addcmul(origin, dirs, th[:, None])
            facing_normal = normal * side[:, None]
            irr = irr + self._headlights(points, facing_normal, ego_pose.to(torch.float32))
        return irr

    @staticmethod
    def _headlights(points: torch.Tensor, normal: torch.Tensor, ego_pose: torch.Tensor):
        fwd = ego_pose[:3, 0]
        total = torch.zeros(points.shape[0])
        for lamp in HEADLIGHTS:
            pos = ego_pose[:3, :3] @ torch.tensor(lamp) + ego_pose[:3, 3]
            to_p = points - pos
            dist = to_p.norm(dim=1).clamp(min=0.5)
            to_p = to_p / dist[:, None]
            cos_axis = to_p @ fwd
            cone = ((cos_axis - HEADLIGHT_COS) / (1 - HEADLIGHT_COS)).clamp(0, 1) ** 0.7
            lambert = (-(to_p * normal).sum(1)).clamp(min=0)
            total = total + HEADLIGHT_POWER * cone * lambert / dist**2
        return torch.tensor([1.0, 0.97, 0.9])[:, None] * total[None]

    @staticmethod
    def _sky(light: Lighting, dirs: torch.Tensor) -> torch.Tensor:
        """``[3, N]`` sky colour in directions ``[N, 3]``."""
        elev = dirs[:, 2].clamp(-1, 1)
        t = elev.clamp(min=0).sqrt()[None]
        sky = light.sky_horizon[:, None] * (1 - t) + light.sky_zenith[:, None] * t
        below = (elev < 0)[None]  # under the horizon (seen in reflections): darker haze
        return torch.where(below, light.sky_horizon[:, None] * 0.6, sky)

    @staticmethod
    def _glare(
        light: Lighting,
        geometry: SceneGeometry,
        origin: torch.Tensor,
        rotation: torch.Tensor,
        rays_body_t: torch.Tensor,
        half_view: float,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Glare of a low sun in or near the view as ``(pixel indices, [3, K] light)``, or
        None; only pixels within about 37 degrees of the sun get any (beyond, the veil is
        under 0.3% of full scale). ``rotation`` is the camera's world-from-body rotation and
        ``rays_body_t`` its ``[3, N]`` pixel rays in the body frame."""
        strength = float(light.sun.max())
        if strength <= 0:
            return None
        sun_body = rotation.T @ light.sun_dir
        # No pixel's ray is closer to the sun than its angle to the axis (body x) less the
        # half view: skip the per-pixel test when even that bound is beyond the 0.6 cut below.
        to_axis = math.acos(max(-1.0, min(1.0, float(sun_body[0]))))
        if math.cos(max(0.0, to_axis - half_view)) < 0.6:
            return None
        cos = sun_body @ rays_body_t  # [3] @ [3, N]: a contiguous pass over the rays
        if float(cos.max()) < 0.6:  # the sun is far outside the view
            return None
        if bool(occluded(geometry.scene, origin[None], light.sun_dir[None])[0]):
            return None
        near = torch.nonzero(cos > 0.8).flatten()
        if near.numel() == 0:
            return None
        c = cos.index_select(0, near)
        # A bright core around the sun and a broad veil that washes out contrast.
        core = torch.exp((c - 1) / 0.0004) * 3.0
        veil = torch.exp((c - 1) / 0.04) * 0.35
        return near, light.sun[:, None] * (core + veil)[None]

    @staticmethod
    def _rain(image: torch.Tensor, rain: float, generator: torch.Generator) -> torch.Tensor:
        """Rain streaks: sparse drops smeared into slanted lines, and a veil of spray."""
        _, h, w = image.shape
        drops = (torch.rand(1, 1, h, w, generator=generator) < 0.004 * rain).float()
        length = max(3, h // 30)
        kernel = torch.zeros(1, 1, length, length)
        for k in range(length):
            kernel[0, 0, k, min(length - 1, k // 3)] = 1.0 / length
        streaks = F.conv2d(drops, kernel, padding=length // 2)[0, :, :h, :w]
        veil = 0.08 * rain
        return image * (1 - veil - 0.5 * streaks) + (veil + 0.6 * streaks) * 0.7

    def _motion_blur(
        self, image: torch.Tensor, camera_pose: torch.Tensor, velocity: torch.Tensor
    ) -> torch.Tensor:
        """Smear along the image-space flow of the ego's motion during the shutter (kornia)."""
        import kornia

        v_cam = camera_pose[:3, :3].T.to(torch.float32) @ velocity.to(torch.float32)
        metres = float(v_cam.norm()) * self.spec.motion_blur
        pixels = round(metres * self.intrinsics.fx / 10.0)  # flow at 10 m, a typical depth
        if pixels < 2:
            return image
        k = pixels | 1
        return kornia.filters.motion_blur(image[None], k, 0.0, 0.0)[0]


def _downsample(out: CameraOutput, factor: int) -> CameraOutput:
    def pool(x):
        return F.avg_pool2d(x[None], factor)[0]

    def nearest(x):
        return None if x is None else x[::factor, ::factor]

    def pool_map(x):
        return None if x is None else pool(x.permute(2, 0, 1)).permute(1, 2, 0)

    return CameraOutput(
        pool(out.image),
        nearest(out.depth),
        nearest(out.instance),
        nearest(out.material),
        pool_map(out.gain),
        pool_map(out.offset),
        out.exposure,
    )
