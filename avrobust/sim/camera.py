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
from avrobust.sim.world import SceneGeometry, World, cast_rays, occluded_rays

SHADOW_BIAS = 0.02  # metres: start shadow rays off the surface to avoid self-hits
HEADLIGHTS = ((2.0, 0.75, 0.7), (2.0, -0.75, 0.7))  # lamp positions on the ego, metres
HEADLIGHT_POWER = 9.0  # irradiance at 1 m on the lamp's axis, in the renderer's units
HEADLIGHT_COS = math.cos(math.radians(28.0))  # cone edge
LUMA = torch.tensor([0.2126, 0.7152, 0.0722])
GLARE_CUT = 0.8  # cosine to the sun below which a pixel gets no glare (37 degrees)
GLARE_STRIDE = 4  # rows and columns between the coarse rays that find the glare's rows


@dataclass
class _GlareBand:
    """Whole image rows that may get glare: pixels ``start`` to ``stop`` (row-major)."""

    start: int
    stop: int
    sun_body: torch.Tensor


@dataclass
class _LightTables:
    """Per-triangle light for one frame; row (or column) 0 is "nothing" (a miss).

    Attributes:
        pixel: ``[16, T + 1]`` gathered for every pixel: the texture coordinates of
            :meth:`CameraRenderer._triangle_table` (10), unshadowed irradiance (3), the sun's
            cosine on the face, gloss, attack-surface slot (-1: none).
        shade: ``[3, T + 1]`` irradiance in shadow (sky light only).
        facing: ``[T + 1, 3]`` unit normal of the side that faces the camera.
        start: the camera's position plus ``facing`` times the shadow rays' offset from the
            surface: where a shadow ray starts, less the hit's distance along the pixel's ray.
        dry: ``[T + 1]`` the factor wetness leaves of the light (1 when dry).
    """

    pixel: torch.Tensor
    shade: torch.Tensor
    facing: torch.Tensor
    start: torch.Tensor
    dry: torch.Tensor


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
        # The glare's coarse grid of rays, and how far a pixel's cosine to the sun can exceed
        # that of the grid's nearest sample (3 rows and 3 columns away at most: under 4.3
        # pixels of at most 1/f radians each).
        grid = self._rays_body.reshape(self._render_intr.height, self._render_intr.width, 3)
        grid = grid[::GLARE_STRIDE, ::GLARE_STRIDE]
        self._coarse_cols = grid.shape[1]
        self._coarse_rays_t = grid.reshape(-1, 3).T.contiguous()
        self._coarse_margin = 5.0 / min(self._render_intr.fx, self._render_intr.fy)
        self._noise_bank: tuple[torch.Tensor, torch.Tensor] | None = None
        self._shadow_buffer: torch.Tensor | None = None

    @property
    def num_rays(self) -> int:
        """Rays per image (one per pixel of the rendered, possibly supersampled, image)."""
        return self._rays_body_t.shape[1]

    def fill_rays(self, camera_pose: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Write the pixels' rays from ``camera_pose`` into ``out`` (``[num_rays, 6]``,
        Open3D's layout: origin, unit direction) and return it."""
        pose = camera_pose.to(torch.float32)
        # [3, 3] @ [3, N] is ten times faster than [N, 3] @ [3, 3] with MKL on small K
        # (NumPy's OpenBLAS is fast but leaves threads spinning that halve the ray casting's
        # speed); the directions must then be row-major: gathers and element-wise operations
        # mixing a column-major [N, 3] with Open3D's row-major outputs run several times slower.
        out[:, :3] = pose[:3, 3]
        out[:, 3:] = (pose[:3, :3] @ self._rays_body_t).T
        return out

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
        cast: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None,
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
            cast: this camera's rays (:meth:`fill_rays` for ``camera_pose``) and their hits,
                when the caller cast them together with other rays (one cast costs less than
                two); cast here when None.
        """
        textures = textures or {}
        intr = self._render_intr
        h, w = intr.height, intr.width
        pose = camera_pose.to(torch.float32)
        origin = pose[:3, 3]
        if cast is None:
            rays = self.fill_rays(camera_pose, torch.empty(self.num_rays, 6))
            hit = cast_rays(geometry.scene, rays)
        else:
            rays, hit = cast
        dirs = rays[:, 3:]
        # Everything below is computed densely over all pixels (misses read row 0 of the
        # tables, "nothing", and are replaced by the sky at the end): gathers of hit subsets
        # cost more than they save.
        idx = hit["prim"] + 1  # row of the per-triangle tables; 0: sky
        t_hit = hit["t_hit"]  # inf on a miss

        # --- surface attributes: one gather of a per-triangle table -------------------------
        # Channel-first [16, N] (each attribute a contiguous row): corner 0's UV and the UV
        # edges to corners 1 and 2 (6), the atlas rectangle (4), unshadowed light (3), the
        # sun's cosine, gloss, attack-surface slot. Light depends on the triangle only (flat
        # faces; the face seen from the camera is the same for all its pixels), so it is
        # computed per triangle and gathered.
        tables = self._light_tables(geometry, origin, light)
        px = torch.gather(tables.pixel, 1, idx.expand(tables.pixel.shape[0], -1))
        gain_hit, n_dot_l, spec, slot = px[10:13], px[13], px[14], px[15]
        bary = hit["bary"].T
        # uv = corner 0 + bary_1 * edge_1 + bary_2 * edge_2, then the atlas's grid coordinates
        # origin + frac(uv) * extent, written straight into grid_sample's [N, 2] layout.
        uv = []
        grid = torch.empty(idx.shape[0], 2)
        for k in range(2):
            c = torch.addcmul(torch.addcmul(px[k], px[2 + k], bary[0]), px[4 + k], bary[1])
            uv.append(c)
            torch.addcmul(px[6 + k], c - torch.floor(c), px[8 + k], out=grid[:, k])
        albedo = self._albedo(slot, uv, grid, textures)

        # --- shadows (and whether the sun itself is hidden, for the glare) -------------------
        band = self._glare_band(light, pose[:3, :3])
        lit = (
            torch.nonzero(n_dot_l > 0).flatten()
            if float(light.sun.max()) > 0
            else torch.zeros(0, dtype=torch.int64)
        )
        m = lit.numel()
        sun_hidden = False
        if m or band is not None:
            # Shadow rays in Open3D's [M, 6] layout: off the surface towards the sun; the last
            # one, when glare is possible, from the camera itself.
            shadow = self._shadow_rays(m + (band is not None), light.sun_dir)
            if m:
                lit_rows = idx.index_select(0, lit)
                # start = (origin + facing normal * bias) + direction * distance
                torch.addcmul(
                    tables.start.index_select(0, lit_rows),
                    dirs.index_select(0, lit),
                    t_hit.index_select(0, lit)[:, None],
                    out=shadow[:m, :3],
                )
            if band is not None:
                shadow[m, :3] = origin
            blocked = occluded_rays(geometry.scene, shadow)
            if band is not None:
                sun_hidden = bool(blocked[m])
                blocked = blocked[:m]
            if m:
                in_shadow = torch.nonzero(blocked).flatten()
                # gain_hit is a fresh gather (no gradient): overwrite in place.
                gain_hit.index_copy_(
                    1,
                    lit.index_select(0, in_shadow),
                    tables.shade.index_select(1, lit_rows.index_select(0, in_shadow)),
                )
        if light.headlights and ego_pose is not None:
            th = torch.where(idx > 0, t_hit, torch.zeros(()))
            points = torch.addcmul(origin, dirs, th[:, None])
            facing = tables.facing.index_select(0, idx)
            lamps = self._headlights(points, facing, ego_pose.to(torch.float32))
            if light.wet > 0:
                lamps = lamps * tables.dry.index_select(0, idx)
            gain_hit = gain_hit + lamps
        radiance = albedo * gain_hit

        # Mirror the sky where a surface is glossy (glass, paint, wet road).
        glossy = torch.nonzero(spec > 0).flatten()
        reflect = None
        if glossy.numel():
            d_g = dirs.index_select(0, glossy)
            n_g = tables.facing.index_select(0, idx.index_select(0, glossy))
            mirror = d_g - 2 * (d_g * n_g).sum(1, keepdim=True) * n_g
            reflect = self._sky(light, mirror) * spec.index_select(0, glossy)
            radiance = radiance.index_add(1, glossy, reflect)

        # --- fog, then the sky where nothing was hit, and glare ---------------------------
        # Transmittance exp(-beta * (t - start)) past the fog's start; misses get 0 (bounded,
        # so that no fog at all cannot make inf * 0).
        trans = (t_hit - light.fog_start).clamp_(0, 1e5).mul_(-light.fog_beta).exp_()
        # radiance * trans + airlight * (1 - trans) in one fused operation.
        radiance = torch.lerp(light.airlight[:, None].expand_as(radiance), radiance, trans)
        sky_trans = math.exp(-light.fog_beta * 2000.0)
        miss = torch.nonzero(idx == 0).flatten()
        sky = self._sky(light, dirs.index_select(0, miss), sky_trans)
        grad = radiance.requires_grad
        image = radiance.index_copy(1, miss, sky) if grad else radiance.index_copy_(1, miss, sky)
        glare = None if sun_hidden or band is None else self._glare(light, band)
        if glare is not None:
            image = self._add_glare(image, glare, grad)

        # --- exposure (auto, from a detached luminance estimate) -------------------------------
        lum = float(LUMA @ image.detach().mean(1))
        exposure = float(min(3.5, max(0.7, 0.36 / max(lum, 1e-4)))) * self.spec.exposure
        image = image.reshape(3, h, w)
        noisy = self.spec.noise_stddev > 0
        blur = self.spec.motion_blur > 0 and ego_velocity is not None
        if light.rain > 0 or blur:
            image = image * exposure
            if light.rain > 0:
                image = self._rain(image, light.rain, generator)
            if blur:
                image = self._motion_blur(image, camera_pose, ego_velocity)
            if noisy:
                image = image + self._noise(image.numel(), generator).view(image.shape)
        elif noisy:  # noise + exposure * image in one pass
            noise = self._noise(image.numel(), generator).view(image.shape)
            image = torch.add(noise, image, alpha=exposure)
        else:
            image = image * exposure
        image = image.clamp(0, 1) if image.requires_grad else image.clamp_(0, 1)

        # --- per-pixel bookkeeping: ground truth only (attack steps and timing runs skip it) ---
        depth = instance = material = gain = offset = None
        if maps:
            valid = idx > 0
            prim = hit["prim"].clamp(min=0)
            forward = dirs @ pose[:3, 0]  # cosine to the optical axis
            depth = torch.where(valid, t_hit * forward, torch.full((), float("inf"))).reshape(h, w)
            no_id = torch.zeros((), dtype=torch.int64)
            instance = torch.where(valid, geometry.tri_instance.index_select(0, prim), no_id)
            instance = instance.reshape(h, w)
            mat = geometry.tri_material.index_select(0, prim)
            material = torch.where(valid, mat, no_id - 1).reshape(h, w)
            g = torch.where(valid[None], gain_hit * trans, torch.zeros(())).detach() * exposure
            o = light.airlight[:, None] * (1 - trans)
            if reflect is not None:
                o = o.index_add(1, glossy, reflect.detach() * trans.index_select(0, glossy))
            o = o.index_copy(1, miss, sky.detach())
            if glare is not None:
                o = self._add_glare(o, glare, False)
            gain = g.reshape(3, h, w).permute(1, 2, 0)
            offset = (o * exposure).reshape(3, h, w).permute(1, 2, 0)
        out = CameraOutput(image, depth, instance, material, gain, offset, exposure)
        if self.spec.antialias > 1:
            out = _downsample(out, self.spec.antialias)
        return out

    def _noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[n]`` sensor noise (normal, ``noise_stddev``): a random window into a fixed bank
        (drawing a fresh million normals costs more than shading a frame) with a random sign;
        both come from ``generator``. The bank is kept scaled, once with each sign."""
        if self._noise_bank is None or self._noise_bank[0].numel() < 2 * n:
            bank = torch.randn(2 * n + 4099, generator=torch.Generator().manual_seed(0))
            bank *= self.spec.noise_stddev
            self._noise_bank = (bank, -bank)
        start = int(torch.randint(0, self._noise_bank[0].numel() - n, (1,), generator=generator))
        positive = int(torch.randint(0, 2, (1,), generator=generator))
        return self._noise_bank[0 if positive else 1][start : start + n]

    # --- pieces ---------------------------------------------------------------------------
    def _shadow_rays(self, m: int, sun_dir: torch.Tensor) -> torch.Tensor:
        """``[m, 6]`` rays towards the sun, their starts to be written: the rows of a buffer
        kept between frames whose directions are already filled (a third of the cost of
        building the rays otherwise)."""
        buf = self._shadow_buffer
        if buf is None or buf.shape[0] < m or not torch.equal(buf[0, 3:], sun_dir):
            buf = torch.empty(max(m, self.num_rays + 1), 6)
            buf[:, 3:] = sun_dir
            self._shadow_buffer = buf
        return buf[:m]

    def _triangle_table(self, geometry: SceneGeometry) -> torch.Tensor:
        """``[10, T + 1]`` per triangle (column 0: nothing, for misses): corner 0's UV and the
        edges to corners 1 and 2 in UV (6), atlas rectangle in grid coordinates (4). Cached on
        the geometry (a few thousand columns)."""
        cached = getattr(geometry, "_camera_table", None)
        if cached is not None and cached[0] is self:
            return cached[1]
        rects = self.atlas.grid_rects[self.atlas_slot.clamp(min=0)]
        uv = geometry.tri_uv.reshape(-1, 3, 2)
        edges = torch.cat([uv[:, 0], uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]], dim=1)
        table = torch.cat([edges, rects.index_select(0, geometry.tri_material)], dim=1)
        table = torch.cat([torch.zeros(1, table.shape[1]), table]).T.contiguous()
        geometry._camera_table = (self, table)
        return table

    def _light_tables(
        self, geometry: SceneGeometry, origin: torch.Tensor, light: Lighting
    ) -> _LightTables:
        """Per-triangle light as seen from ``origin``: surfaces are two-sided, and the side of
        a flat triangle that faces the camera is the same for all its pixels (the sign of its
        normal's dot product with any point of its plane less the origin)."""
        normal = geometry.tri_normal
        side = torch.where(((geometry.tri_corner - origin) * normal).sum(1) > 0, -1.0, 1.0)
        facing = normal * side[:, None]
        if float(light.sun.max()) > 0:
            n_dot_l = (facing @ light.sun_dir).clamp(min=0)
        else:
            n_dot_l = torch.zeros(normal.shape[0])
        # Sky light from the upper hemisphere: more on faces that look up.
        sky_share = 0.55 + 0.45 * facing[:, 2]
        shade = light.ambient[:, None] * sky_share[None]
        lit = shade + light.sun[:, None] * n_dot_l[None]
        mat = geometry.tri_material
        spec = self.specular.index_select(0, mat)
        dry = torch.ones(normal.shape[0])
        if light.wet > 0:  # wet roads darken and mirror the sky
            wet = self.wettable.index_select(0, mat).float() * (0.35 * light.wet)
            dry = 1.0 - wet
            shade, lit, spec = shade * dry, lit * dry, spec + wet
        slot = self.surface_slot.index_select(0, mat)
        pixel = torch.cat([lit, n_dot_l[None], spec[None], slot[None]])
        nothing = torch.tensor([[0.0], [0.0], [0.0], [0.0], [0.0], [-1.0]])
        pixel = torch.cat([nothing, pixel], dim=1)
        return _LightTables(
            pixel=torch.cat([self._triangle_table(geometry), pixel]),
            shade=torch.cat([torch.zeros(3, 1), shade], dim=1),
            facing=torch.cat([torch.zeros(1, 3), facing]),
            start=torch.cat([torch.zeros(1, 3), facing * SHADOW_BIAS + origin]),
            dry=torch.cat([torch.ones(1), dry]),
        )

    def _albedo(
        self,
        slot: torch.Tensor,
        uv: list[torch.Tensor],
        grid: torch.Tensor,
        textures: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """``[3, N]`` albedo; attack surfaces come from ``textures`` (differentiably).
        ``slot`` is each pixel's attack-surface slot (-1: none), ``uv`` its texture
        coordinates (u and v, ``[N]`` each) and ``grid`` its atlas coordinates ``[N, 2]``."""
        # Sample the atlas everywhere (attack-surface pixels read slot 0 and are overwritten).
        out = self.atlas.sample_grid(grid)
        # One pass over the pixels finds every surface's; each surface then picks its own.
        on_surface = torch.nonzero(slot >= 0).flatten()
        if on_surface.numel() == 0:
            return out
        slot_of = slot.index_select(0, on_surface)
        for k, name in enumerate(self.surface_material):
            sel = on_surface[slot_of == k]
            if sel.numel() == 0:
                continue
            tex = textures.get(name, self.world.materials[name].texture)
            at = torch.stack([uv[0].index_select(0, sel), uv[1].index_select(0, sel)], 1)
            colour = sample_texture(tex, at.clamp_(0, 1))
            # Out of place when it must stay differentiable in the texture.
            out = (
                out.index_copy(1, sel, colour)
                if colour.requires_grad
                else out.index_copy_(1, sel, colour)
            )
        return out

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
    def _sky(light: Lighting, dirs: torch.Tensor, trans: float = 1.0) -> torch.Tensor:
        """``[3, N]`` sky colour in directions ``[N, 3]`` seen through fog of transmittance
        ``trans`` (the rest is airlight)."""
        elev = dirs[:, 2]
        t = elev.clamp(min=0).sqrt_()[None]
        haze = light.airlight * (1 - trans)
        # horizon + (zenith - horizon) * sqrt(elevation), through the fog: one operation.
        base = (light.sky_horizon * trans + haze)[:, None]
        sky = torch.addcmul(base, ((light.sky_zenith - light.sky_horizon) * trans)[:, None], t)
        below = (elev < 0)[None]  # under the horizon (seen in reflections): darker haze
        return torch.where(below, (light.sky_horizon * (0.6 * trans) + haze)[:, None], sky)

    def _glare_band(self, light: Lighting, rotation: torch.Tensor) -> _GlareBand | None:
        """The image rows where a low sun may glare (the sun within GLARE_CUT of a pixel's
        ray), or None. ``rotation`` is the camera's world-from-body rotation.

        A coarse grid of rays (every GLARE_STRIDE-th row and column) finds the rows; a margin
        on the cosine and a stride of rows around them make sure that no pixel beyond the
        grid's samples is missed. The band is whole rows, so it is a contiguous range of
        pixels: no per-pixel selection is needed."""
        if float(light.sun.max()) <= 0:
            return None
        sun_body = rotation.T @ light.sun_dir
        # No pixel's ray is closer to the sun than its angle to the axis (body x) less the
        # half view: skip the grid when even that bound is beyond the cut.
        to_axis = math.acos(max(-1.0, min(1.0, float(sun_body[0]))))
        if math.cos(max(0.0, to_axis - self._half_view)) < GLARE_CUT:
            return None
        coarse = (sun_body @ self._coarse_rays_t).reshape(-1, self._coarse_cols)
        rows = torch.nonzero(coarse.amax(1) > GLARE_CUT - self._coarse_margin).flatten()
        if rows.numel() == 0:
            return None
        w, h = self._render_intr.width, self._render_intr.height
        first = max(0, int(rows[0]) * GLARE_STRIDE - GLARE_STRIDE)
        last = min(h, int(rows[-1]) * GLARE_STRIDE + GLARE_STRIDE + 1)
        return _GlareBand(first * w, last * w, sun_body)

    def _glare(self, light: Lighting, band: _GlareBand) -> tuple[int, int, torch.Tensor]:
        """Glare over ``band`` as ``(first pixel, end pixel, [3, K] light)``: a broad veil
        that washes out contrast, falling to zero at GLARE_CUT, and a bright core around the
        sun when it is within a few degrees of the view."""
        cos = band.sun_body @ self._rays_body_t[:, band.start : band.stop]
        glare = (cos - 1).div_(0.04).exp_().sub_(math.exp((GLARE_CUT - 1) / 0.04))
        glare.clamp_(min=0).mul_(0.35)
        if float(cos.max()) > 0.99:  # the core is under 1e-10 further out
            glare += torch.exp((cos - 1) / 0.0004) * 3.0
        return band.start, band.stop, light.sun[:, None] * glare[None]

    @staticmethod
    def _add_glare(
        image: torch.Tensor, glare: tuple[int, int, torch.Tensor], grad: bool
    ) -> torch.Tensor:
        """``image`` ([3, N]) plus the glare over its range of pixels; in place unless the
        image carries a gradient."""
        start, stop, light = glare
        if grad:
            return image.index_add(1, torch.arange(start, stop), light)
        image[:, start:stop] += light
        return image

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
