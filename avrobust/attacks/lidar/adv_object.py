"""An adversarial object: a small mesh whose vertex offsets are optimised so that the LiDAR sees
its host wrongly (MSF-ADV, Cao et al. 2021, shapes one physical object against fusion).

The object is mounted on the host car: a roof box, or a carrier on its tow hitch behind the
rear (a bike or cargo carrier), both fabricable shapes.
Its vertices move within ``max_offset`` of the base shape. Each step inserts the object into
each training sweep by casting the victim's rays at it with differentiable ray-triangle
intersection (:mod:`.raycast`): a ray that hits it nearer than its current return gets the
object's return instead (the object occludes what lies behind it), and the loss is the
victim's score for any object over the host's footprint. The object is then judged by
re-casting every ray with Open3D on frames it was not optimised on, and exported as a mesh
file (OBJ, PLY or STL) for fabrication.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
import torch

from avrobust.attacks.frozen import frozen
from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.attacks.lidar.raycast import first_hit
from avrobust.attacks.lidar.sweep import LidarSweep
from avrobust.core.attachment import HITCH_HEIGHT, Attachment
from avrobust.core.boxes import Box3D
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import LidarSpec, clear_air_intensity


def _box_mesh(size, shift, subdivisions: int):
    mesh = o3d.geometry.TriangleMesh.create_box(*size)
    mesh.translate(shift)
    for _ in range(subdivisions):
        mesh = mesh.subdivide_midpoint(1)
    mesh.merge_close_vertices(1e-6)
    v = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32)
    f = torch.tensor(np.asarray(mesh.triangles), dtype=torch.long)
    return v, f


def roof_box(size: tuple[float, float, float] = (1.4, 0.8, 0.35), subdivisions: int = 2):
    """``(vertices [V, 3], faces [F, 3])`` of a roof box in its own frame (x along the host,
    z up, origin at the centre of its base), its faces subdivided so the shape can bend."""
    return _box_mesh(size, (-size[0] / 2, -size[1] / 2, 0.0), subdivisions)


def rear_carrier(size: tuple[float, float, float] = (0.3, 1.6, 1.0), subdivisions: int = 2):
    """A carrier on the host's tow hitch (a bike or cargo carrier): a slab behind the rear,
    origin at the middle of its front bottom edge, extending backwards (-x)."""
    return _box_mesh(size, (-size[0], -size[1] / 2, 0.0), subdivisions)


MOUNTS = {"roof": roof_box, "rear": rear_carrier}
PLAIN_GREY = 0.5  # albedo of an unprinted object


def host_pose(box: Box3D, mount: str = "roof") -> torch.Tensor:
    """``[4, 4]`` object-to-LiDAR pose on ``box`` (one box), along its heading: on its roof,
    or behind its rear at hitch height."""
    c, s = float(torch.cos(box.yaw[0])), float(torch.sin(box.yaw[0]))
    pose = torch.eye(4)
    pose[:2, :2] = torch.tensor([[c, -s], [s, c]])
    length, _, height = (float(v) for v in box.size[0])
    if mount == "roof":
        pose[:3, 3] = box.center[0] + torch.tensor([0.0, 0.0, height / 2])
    elif mount == "rear":
        offset = torch.tensor([-length / 2 * c, -length / 2 * s, HITCH_HEIGHT - height / 2])
        pose[:3, 3] = box.center[0] + offset
    else:
        raise ConfigError(f"unknown mount {mount!r}", field="mount", allowed="roof, rear")
    return pose


@dataclass
class AdversarialObject:
    base: torch.Tensor  # [V, 3] object frame
    faces: torch.Tensor  # [F, 3]
    max_offset: float = 0.15
    offsets: torch.Tensor = field(default=None)  # type: ignore[assignment]
    reflectivity: float = 0.4  # LiDAR reflectivity of its surface
    mount: str = "roof"
    # An object-frame box ((x0, x1), (y0, y1), (z0, z1)) the vertices stay inside (the size
    # a fabricated object may have), or None.
    bounds: tuple[tuple[float, float], tuple[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.offsets is None:
            self.offsets = torch.zeros_like(self.base)

    def vertices(self, offsets: torch.Tensor | None = None) -> torch.Tensor:
        o = self.offsets if offsets is None else offsets
        v = self.base + o.clamp(-self.max_offset, self.max_offset)
        # It sits on its mount: no vertex below the base, and a rear carrier none inside the
        # host (its frame's x = 0 is the host's rear face).
        x = v[:, :1].clamp(max=0.0) if self.mount == "rear" else v[:, :1]
        v = torch.cat([x, v[:, 1:2], v[:, 2:].clamp(min=0.0)], 1)
        if self.bounds is not None:
            lo = torch.tensor([b[0] for b in self.bounds], dtype=v.dtype)
            hi = torch.tensor([b[1] for b in self.bounds], dtype=v.dtype)
            v = torch.maximum(torch.minimum(v, hi), lo)
        return v

    def uvs(self) -> np.ndarray:
        """``[F, 3, 2]`` texture coordinates: the texture projected along the host's axis as
        a follower sees the object (u left to right, v top to bottom), from the base shape,
        so the print stays where it is when the shape bends."""
        y, z = self.base[:, 1], self.base[:, 2]
        u = (y.max() - y) / (y.max() - y.min()).clamp(min=1e-6)
        v = (z.max() - z) / (z.max() - z.min()).clamp(min=1e-6)
        return torch.stack([u, v], 1)[self.faces].numpy()

    def attachment(
        self, host: str, texture: torch.Tensor | None = None, name: str = "adversarial_object"
    ) -> Attachment:
        """The object as the simulator draws it, fixed to ``host`` on its mount: the current
        shape, ``texture`` (``[3, h, w]``; plain grey when None) and the object's LiDAR
        reflectivity."""
        if texture is None:
            texture = torch.full((3, 8, 8), PLAIN_GREY)
        return Attachment(
            name,
            host,
            self.vertices().detach().numpy(),
            self.faces.numpy(),
            self.uvs(),
            texture.detach(),
            mount=self.mount,
            reflectivity=self.reflectivity,
        )

    def placed(self, pose: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        v = self.vertices(offsets)
        return v @ pose[:3, :3].T + pose[:3, 3]

    def save(self, path: str | Path, texture: torch.Tensor | None = None) -> Path:
        """Write the mesh (metres, object frame) as OBJ, PLY or STL, by the file's suffix;
        with ``texture`` (``[3, h, w]``) as OBJ only, beside its MTL and PNG (OBJ's texture
        coordinates count v up from the image's bottom, so :meth:`uvs`' v is flipped)."""
        path = Path(path)
        if path.suffix.lower() not in (".obj", ".ply", ".stl"):
            raise ConfigError("mesh files are .obj, .ply or .stl", file=path)
        if texture is not None and path.suffix.lower() != ".obj":
            raise ConfigError("a textured object is saved as .obj (with .mtl, .png)", file=path)
        mesh = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(self.vertices().detach().double().numpy()),
            o3d.utility.Vector3iVector(self.faces.numpy().astype(np.int32)),
        )
        mesh.compute_vertex_normals()
        if texture is not None:
            uv = self.uvs().reshape(-1, 2).astype(np.float64)
            uv[:, 1] = 1.0 - uv[:, 1]
            mesh.triangle_uvs = o3d.utility.Vector2dVector(uv)
            mesh.triangle_material_ids = o3d.utility.IntVector([0] * len(self.faces))
            rgb = (texture.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
            mesh.textures = [o3d.geometry.Image(np.ascontiguousarray(rgb.numpy()))]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not o3d.io.write_triangle_mesh(str(path), mesh):
            raise ConfigError("Open3D could not write the mesh", file=path)
        return path


def _candidate_rays(spec: LidarSpec, vertices: torch.Tensor, margin: float = 0.02):
    """Rays whose direction lies within the object's angular bounds (plus ``margin`` rad)."""
    v = vertices.detach()
    az = torch.atan2(v[:, 1], v[:, 0])
    el = torch.atan2(v[:, 2], v[:, :2].norm(dim=1))
    azs = spec.azimuths()[None, :].expand(spec.channels, -1)
    els = spec.elevations()[:, None].expand(-1, spec.columns)
    ok = (azs >= az.min() - margin) & (azs <= az.max() + margin)
    ok &= (els >= el.min() - margin) & (els <= el.max() + margin)
    return ok.reshape(-1).nonzero().flatten()


def insert_object(
    sweep: LidarSweep,
    spec: LidarSpec,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    reflectivity: float,
) -> LidarSweep:
    """The sweep with the object (``vertices`` in the LiDAR frame) in the scene: its returns
    replace those it occludes; differentiable in ``vertices``."""
    rays = _candidate_rays(spec, vertices)
    dirs = spec.ray_directions()[rays]
    t, tri = first_hit(torch.zeros_like(dirs), dirs, vertices, faces)
    current = torch.full((spec.channels * spec.columns,), float("inf"))
    current[sweep.ray] = sweep.points[:, :3].detach().norm(dim=1)
    hit = torch.isfinite(t) & (t < current[rays])
    pts = dirs[hit] * t[hit, None]
    f = faces[tri[hit]]
    v0, v1, v2 = vertices[f[:, 0]], vertices[f[:, 1]], vertices[f[:, 2]]
    normal = torch.nn.functional.normalize(torch.cross(v1 - v0, v2 - v0, dim=1), dim=1)
    cos = (normal * dirs[hit]).sum(1).abs()
    value = clear_air_intensity(reflectivity, cos, t[hit], spec)
    return sweep.replace(rays[hit], torch.cat([pts, value[:, None]], 1))


def recast_object(
    sweep: LidarSweep,
    spec: LidarSpec,
    vertices: torch.Tensor,
    faces: torch.Tensor,
    reflectivity: float,
) -> LidarSweep:
    """The same insertion by Open3D's exact ray casting of every ray (the judge)."""
    mesh = o3d.t.geometry.TriangleMesh()
    mesh.vertex.positions = o3d.core.Tensor(vertices.detach().float().numpy())
    mesh.triangle.indices = o3d.core.Tensor(faces.numpy().astype(np.int32))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh)
    dirs = spec.ray_directions()
    rays = np.concatenate([np.zeros((len(dirs), 3), np.float32), dirs.numpy()], 1)
    ans = scene.cast_rays(o3d.core.Tensor(rays))
    t = torch.from_numpy(ans["t_hit"].numpy())
    normal = torch.from_numpy(ans["primitive_normals"].numpy())
    current = torch.full((len(dirs),), float("inf"))
    current[sweep.ray] = sweep.points[:, :3].norm(dim=1)
    idx = (torch.isfinite(t) & (t < current)).nonzero().flatten()
    pts = dirs[idx] * t[idx, None]
    cos = (torch.nn.functional.normalize(normal[idx], dim=1) * dirs[idx]).sum(1).abs()
    value = clear_air_intensity(reflectivity, cos, t[idx], spec)
    return sweep.replace(idx, torch.cat([pts, value[:, None]], 1))


@dataclass
class HostView:
    """One training or test frame: the victim's objective, the clean sweep, the host's box."""

    objective: FrameObjective
    sweep: LidarSweep
    box: Box3D


def optimise_object(
    obj: AdversarialObject,
    views: list[HostView],
    spec: LidarSpec,
    steps: int = 100,
    lr: float = 0.01,
    on_step=None,
) -> list[float]:
    """Adam on the vertex offsets, minimising the mean over ``views`` of the victim's score
    for any object over the host's footprint; keeps the best offsets seen and returns the
    loss per step."""
    offsets = obj.offsets.clone().requires_grad_(True)
    opt = torch.optim.Adam([offsets], lr=lr)
    history = []
    best, best_offsets = float("inf"), offsets.detach().clone()
    with frozen(*(v.objective.victim for v in views)):  # once, not per score call
        for step in range(steps):
            total = 0.0
            opt.zero_grad(set_to_none=True)
            for view in views:
                pose = host_pose(view.box, obj.mount)
                attacked = insert_object(
                    view.sweep, spec, obj.placed(pose, offsets), obj.faces, obj.reflectivity
                )
                x, y = float(view.box.center[0, 0]), float(view.box.center[0, 1])
                reach = float(view.box.size[0, :2].norm()) / 2 + 0.5
                score = view.objective.score(attacked.points, x, y, None, radius=reach)
                (score / len(views)).backward()
                total += float(score.detach()) / len(views)
            if total < best:  # the offsets that scored it, before this step moves them
                best, best_offsets = total, offsets.detach().clone()
            opt.step()
            with torch.no_grad():
                offsets.clamp_(-obj.max_offset, obj.max_offset)
            history.append(total)
            if on_step:
                on_step(step, total)
    obj.offsets = best_offsets
    return history
