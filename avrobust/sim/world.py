"""The world: materials, objects and attack surfaces, and their triangles at a moment in time.

Static objects are merged once; moving objects are placed at each frame's time and the whole
triangle soup goes into one Open3D ``RaycastingScene`` (building it takes a few milliseconds).
Per-triangle tables (material, instance id, corner UVs) map a ray hit back to what it hit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import torch

from avrobust.sim.meshes import Mesh


@dataclass
class Material:
    """Appearance of a surface for both sensors.

    Attributes:
        name: unique name.
        texture: ``[3, h, w]`` float32 albedo in [0, 1].
        reflectivity: LiDAR reflectivity in [0, 1] (retro-reflective sign sheeting is near 1).
        surface: name of the attack surface this material is, or None. Attack-surface textures
            are sampled from their own tensors so that gradients reach them.
        specular: share of sky light mirrored (glass, wet paint).
        wettable: darkens and mirrors the sky when the weather is wet (roads, pavements).
    """

    name: str
    texture: torch.Tensor
    reflectivity: float = 0.3
    surface: str | None = None
    specular: float = 0.0
    wettable: bool = False

    def __post_init__(self) -> None:
        self.texture = torch.as_tensor(self.texture, dtype=torch.float32)
        if self.texture.dim() != 3 or self.texture.shape[0] != 3:
            raise ValueError(f"material {self.name}: texture must be [3, h, w]")


@dataclass
class Part:
    """A mesh in its object's local frame, drawn with one material."""

    mesh: Mesh
    material: str


@dataclass
class SimObject:
    """Something in the world.

    Attributes:
        name: unique name (scenario actors keep their scenario names).
        category: ``car``, ``pedestrian``, ``traffic_sign`` (the labelled classes) or a clutter
            kind (``road``, ``building``, ``vegetation``, ``pole``, ``prop``, ``ground``).
        subclass: sign type or vehicle body, ``""`` otherwise.
        parts: meshes with materials, in the object's frame (x forward, y left, z up).
        pose: ``[4, 4]`` world-from-object pose when static or at time 0.
        trajectory: optional function of time (s) returning the ``[4, 4]`` pose.
        box_parts: indices of the parts that the ground-truth box encloses (all when None), e.g.
            a sign's plate but not its post.
        instance_id: set by the :class:`World`; 0 is reserved for "nothing".
    """

    name: str
    category: str
    parts: list[Part]
    pose: np.ndarray = field(default_factory=lambda: np.eye(4))
    subclass: str = ""
    trajectory: Callable[[float], np.ndarray] | None = None
    box_parts: list[int] | None = None
    instance_id: int = 0

    LABELLED = ("car", "pedestrian", "traffic_sign")

    @property
    def labelled(self) -> bool:
        return self.category in self.LABELLED

    def pose_at(self, t: float) -> np.ndarray:
        return np.asarray(self.trajectory(t) if self.trajectory else self.pose, dtype=np.float64)

    def local_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(center, size)`` of the axis-aligned box around the boxed parts, object frame."""
        parts = self.parts if self.box_parts is None else [self.parts[i] for i in self.box_parts]
        lo = np.min([p.mesh.vertices.min(0) for p in parts], axis=0)
        hi = np.max([p.mesh.vertices.max(0) for p in parts], axis=0)
        return (lo + hi) / 2, hi - lo


@dataclass
class SurfaceDef:
    """An attack surface: a textured rectangle on an object.

    Attributes:
        name: the surface's name (also the name of its material).
        object_name: the object carrying it.
        corners: ``[4, 3]`` object-frame corners of the texture rectangle in the order top-left,
            top-right, bottom-right, bottom-left as seen from the front.
        size_m: ``(width, height)`` metres.
        normal: ``[3]`` object-frame outward normal (towards the viewer).
    """

    name: str
    object_name: str
    corners: np.ndarray
    size_m: tuple[float, float]
    normal: np.ndarray


@dataclass(eq=False)
class SceneGeometry:
    """All triangles of the world at one time, ready for ray casting.

    Attributes:
        scene: Open3D scene with one geometry (the merged soup).
        tri_uv: ``[T, 3, 2]`` float32 corner UVs.
        tri_material: ``[T]`` int64 material index (``World.material_names``).
        tri_instance: ``[T]`` int64 instance id.
        tri_normal: ``[T, 3]`` float32 unit face normals (Open3D's, up to sign; zero for a
            degenerate triangle).
        tri_corner: ``[T, 3]`` float32 first corner of each triangle (a point on its plane).
        poses: world-from-object pose of every object at this time, by name.
        time: the time in seconds.
    """

    scene: o3d.t.geometry.RaycastingScene
    tri_uv: torch.Tensor
    tri_material: torch.Tensor
    tri_instance: torch.Tensor
    tri_normal: torch.Tensor
    tri_corner: torch.Tensor
    poses: dict[str, np.ndarray]
    time: float


class World:
    """Materials, objects and attack surfaces; assembles :class:`SceneGeometry` per time."""

    def __init__(self) -> None:
        self.materials: dict[str, Material] = {}
        self.objects: dict[str, SimObject] = {}
        self.surfaces: dict[str, SurfaceDef] = {}
        # Speed profiles with triggers, by object name (scenario behaviours).
        self.behaviours: dict[str, object] = {}
        self._static: _Soup | None = None

    # --- building -----------------------------------------------------------------------
    def add_material(self, material: Material) -> str:
        if material.name not in self.materials:
            self.materials[material.name] = material
        return material.name

    def add_object(self, obj: SimObject) -> SimObject:
        if obj.name in self.objects:
            raise ValueError(f"two objects are named {obj.name!r}")
        for part in obj.parts:
            if part.material not in self.materials:
                raise ValueError(f"object {obj.name}: unknown material {part.material!r}")
        obj.instance_id = len(self.objects) + 1
        self.objects[obj.name] = obj
        self._static = None
        return obj

    def add_surface(self, surface: SurfaceDef) -> None:
        if (
            surface.name not in self.materials
            or self.materials[surface.name].surface != surface.name
        ):
            raise ValueError(f"surface {surface.name!r} needs a material of the same name")
        if surface.object_name not in self.objects:
            raise ValueError(f"surface {surface.name!r}: unknown object {surface.object_name!r}")
        self.surfaces[surface.name] = surface

    @property
    def material_names(self) -> list[str]:
        return list(self.materials)

    # --- geometry -----------------------------------------------------------------------
    def _soup(self, objects: list[SimObject], t: float) -> _Soup:
        mat_index = {n: i for i, n in enumerate(self.materials)}
        verts, tris, uvs, mats, inst = [], [], [], [], []
        offset = 0
        for obj in objects:
            pose = obj.pose_at(t)
            for part in obj.parts:
                m = part.mesh.transformed(pose)
                verts.append(m.vertices)
                tris.append(m.triangles + offset)
                uvs.append(m.uvs)
                mats.append(np.full(m.num_triangles, mat_index[part.material], np.int64))
                inst.append(np.full(m.num_triangles, obj.instance_id, np.int64))
                offset += m.vertices.shape[0]
        if not verts:
            return _Soup(
                np.zeros((0, 3), np.float32),
                np.zeros((0, 3), np.int64),
                np.zeros((0, 3, 2), np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
                np.zeros((0, 3), np.float32),
                np.zeros((0, 3), np.float32),
            )
        vertices = np.concatenate(verts).astype(np.float32)
        triangles = np.concatenate(tris)
        corners = vertices[triangles]  # [T, 3, 3]
        a, b = (corners[:, 1] - corners[:, 0]).T, (corners[:, 2] - corners[:, 0]).T
        # The cross product spelt out: np.cross costs ten times more on small arrays.
        normal = np.stack(
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], 1
        )
        length = np.sqrt((normal * normal).sum(1, keepdims=True))
        normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
        return _Soup(
            vertices,
            triangles,
            np.concatenate(uvs),
            np.concatenate(mats),
            np.concatenate(inst),
            normal,
            np.ascontiguousarray(corners[:, 0]),
        )

    def geometry_at(self, t: float) -> SceneGeometry:
        """Every triangle at time ``t`` in one ray-casting scene."""
        if self._static is None:
            self._static = self._soup(
                [o for o in self.objects.values() if o.trajectory is None], 0.0
            )
        dyn = self._soup([o for o in self.objects.values() if o.trajectory is not None], t)
        st = self._static
        vertices = np.concatenate([st.vertices, dyn.vertices])
        triangles = np.concatenate([st.triangles, dyn.triangles + st.vertices.shape[0]]).astype(
            np.uint32
        )
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(triangles))
        poses = {name: o.pose_at(t) for name, o in self.objects.items()}

        def both(field: str) -> torch.Tensor:
            return torch.from_numpy(np.concatenate([getattr(st, field), getattr(dyn, field)]))

        return SceneGeometry(
            scene,
            both("uvs").float(),
            both("materials"),
            both("instances"),
            both("normals"),
            both("corners"),
            poses,
            t,
        )


@dataclass
class _Soup:
    """Triangles of some objects, merged: the arrays :class:`SceneGeometry` is built from."""

    vertices: np.ndarray  # [V, 3] float32
    triangles: np.ndarray  # [T, 3] int64 into vertices
    uvs: np.ndarray  # [T, 3, 2]
    materials: np.ndarray  # [T] int64
    instances: np.ndarray  # [T] int64
    normals: np.ndarray  # [T, 3] float32 unit
    corners: np.ndarray  # [T, 3] float32 first corner


_THREADS = [0]  # Open3D ray-casting threads; 0: Open3D's own choice (every core)


def set_raycast_threads(n: int) -> None:
    """Threads each ray cast may use (0: every core). Campaign workers that share the
    machine set their own share, so that casts do not oversubscribe the cores."""
    _THREADS[0] = max(0, int(n))


def cast(
    scene: o3d.t.geometry.RaycastingScene, origins: torch.Tensor, directions: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Cast ``[N, 3]`` rays; returns torch tensors ``t_hit`` (inf on a miss), ``prim`` (int64,
    -1 on a miss), ``bary`` ``[N, 2]`` and ``normal`` ``[N, 3]`` (geometric, unnormalised side)."""
    return cast_rays(scene, torch.cat([origins, directions], dim=1).to(torch.float32))


def cast_rays(scene: o3d.t.geometry.RaycastingScene, rays: torch.Tensor) -> dict[str, torch.Tensor]:
    """Like :func:`cast` for rays already in Open3D's ``[N, 6]`` float32 layout."""
    ans = scene.cast_rays(
        o3d.core.Tensor.from_numpy(rays.contiguous().numpy()), nthreads=_THREADS[0]
    )
    t_hit = torch.from_numpy(ans["t_hit"].numpy())
    # Open3D marks a miss with the uint32 maximum, which reads as -1 through an int32 view.
    prim = torch.from_numpy(ans["primitive_ids"].numpy().view(np.int32)).long()
    return {
        "t_hit": t_hit,
        "prim": prim,
        "bary": torch.from_numpy(ans["primitive_uvs"].numpy()),
        "normal": torch.from_numpy(ans["primitive_normals"].numpy()),
    }


def occluded_rays(
    scene: o3d.t.geometry.RaycastingScene, rays: torch.Tensor, t_far: float = float("inf")
) -> torch.Tensor:
    """``[N]`` bool: whether anything lies along each of ``rays`` (Open3D's ``[N, 6]`` float32
    layout) before ``t_far``."""
    if rays.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool)
    ans = scene.test_occlusions(
        o3d.core.Tensor.from_numpy(rays.contiguous().numpy()), tfar=t_far, nthreads=_THREADS[0]
    )
    return torch.from_numpy(ans.numpy()).bool()
