"""Triangle meshes with per-corner texture coordinates, built procedurally.

A :class:`Mesh` keeps ``uv`` per triangle corner (not per vertex) so that a box's faces can each
map the whole texture without duplicated-vertex bookkeeping. UVs are in texture units: ``(0, 0)``
is the texture's top-left, ``(1, 1)`` its bottom-right; values beyond 1 repeat the texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from avrobust.core.signs import regular_polygon  # noqa: F401  (re-exported)


@dataclass
class Mesh:
    """Attributes:
    vertices: ``[V, 3]`` float32.
    triangles: ``[T, 3]`` int64 vertex indices, counter-clockwise seen from the front.
    uvs: ``[T, 3, 2]`` float32 texture coordinates of each triangle corner.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32).reshape(-1, 3)
        self.triangles = np.asarray(self.triangles, dtype=np.int64).reshape(-1, 3)
        self.uvs = np.asarray(self.uvs, dtype=np.float32).reshape(-1, 3, 2)
        if self.uvs.shape[0] != self.triangles.shape[0]:
            raise ValueError("a Mesh needs one uv triple per triangle")

    @property
    def num_triangles(self) -> int:
        return self.triangles.shape[0]

    def transformed(self, pose: np.ndarray) -> Mesh:
        """The mesh with ``pose`` (``[4, 4]``) applied to its vertices."""
        pose = np.asarray(pose, dtype=np.float64)
        v = self.vertices.astype(np.float64) @ pose[:3, :3].T + pose[:3, 3]
        return Mesh(v, self.triangles, self.uvs)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(0), self.vertices.max(0)

    @staticmethod
    def merge(meshes: list[Mesh]) -> Mesh:
        if not meshes:
            return Mesh(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3, 2)))
        offsets = np.cumsum([0] + [m.vertices.shape[0] for m in meshes[:-1]])
        return Mesh(
            np.concatenate([m.vertices for m in meshes]),
            np.concatenate([m.triangles + o for m, o in zip(meshes, offsets, strict=True)]),
            np.concatenate([m.uvs for m in meshes]),
        )


def quad(corners: np.ndarray, uv_corners: np.ndarray | None = None) -> Mesh:
    """Two triangles over four corners given counter-clockwise seen from the front, starting at
    the texture's bottom-left: ``(bl, br, tr, tl)``. ``uv_corners`` defaults to the unit square."""
    if uv_corners is None:
        uv_corners = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], dtype=np.float32)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    return Mesh(corners, tris, uv_corners[tris])


def box(
    size: tuple[float, float, float],
    uv_per_m: float | None = None,
    bottom_at_zero: bool = True,
) -> Mesh:
    """An axis-aligned box of ``(length x, width y, height z)``, faces pointing outwards.

    ``uv_per_m`` repeats the texture every ``1 / uv_per_m`` metres (facades, kerbs); ``None`` maps
    the whole texture onto each face.
    """
    lx, ly, lz = (s / 2 for s in size)
    z0, z1 = (0.0, 2 * lz) if bottom_at_zero else (-lz, lz)
    c = np.array(
        [
            [sx * lx, sy * ly, z]
            for z in (z0, z1)
            for sx, sy in ((1, 1), (1, -1), (-1, -1), (-1, 1))
        ],
        dtype=np.float32,
    )
    # Faces as (bl, br, tr, tl) seen from outside: front (+x), back (-x), right (-y), left (+y),
    # top, bottom.
    faces = [
        ([1, 0, 4, 5], size[1], size[2]),  # +x: from -y to +y
        ([3, 2, 6, 7], size[1], size[2]),  # -x: from +y to -y
        ([2, 1, 5, 6], size[0], size[2]),  # -y: from -x to +x
        ([0, 3, 7, 4], size[0], size[2]),  # +y: from +x to -x
        ([7, 6, 5, 4], size[1], size[0]),  # top
        ([0, 1, 2, 3], size[1], size[0]),  # bottom
    ]
    parts = []
    for idx, w, h in faces:
        if uv_per_m is None:
            uv = None
        else:
            u1, v1 = w * uv_per_m, h * uv_per_m
            uv = np.array([[0, v1], [u1, v1], [u1, 0], [0, 0]], dtype=np.float32)
        parts.append(quad(c[idx], uv))
    return Mesh.merge(parts)


def frustum(
    bottom: tuple[float, float], top: tuple[float, float], height: float, top_shift: float = 0.0
) -> Mesh:
    """A box whose top face ``(length, width)`` is smaller than its bottom, shifted along x by
    ``top_shift``; a car cabin. Bottom at z = 0. Texture maps whole onto each face."""
    bl, bw = bottom[0] / 2, bottom[1] / 2
    tl, tw = top[0] / 2, top[1] / 2
    c = np.array(
        [
            [bl, bw, 0],
            [bl, -bw, 0],
            [-bl, -bw, 0],
            [-bl, bw, 0],
            [tl + top_shift, tw, height],
            [tl + top_shift, -tw, height],
            [-tl + top_shift, -tw, height],
            [-tl + top_shift, tw, height],
        ],
        dtype=np.float32,
    )
    faces = [[1, 0, 4, 5], [3, 2, 6, 7], [2, 1, 5, 6], [0, 3, 7, 4], [7, 6, 5, 4]]
    return Mesh.merge([quad(c[f]) for f in faces])


def cylinder(radius: float, height: float, segments: int = 12, cap: bool = True) -> Mesh:
    """A vertical cylinder, bottom at z = 0; its side wraps the texture once around."""
    ang = np.linspace(0, 2 * math.pi, segments + 1)
    parts = []
    for a0, a1, k in zip(ang[:-1], ang[1:], range(segments), strict=True):
        p0 = np.array([radius * math.cos(a0), radius * math.sin(a0)])
        p1 = np.array([radius * math.cos(a1), radius * math.sin(a1)])
        corners = np.array([[*p0, 0], [*p1, 0], [*p1, height], [*p0, height]], dtype=np.float32)
        u0, u1 = k / segments, (k + 1) / segments
        parts.append(quad(corners, np.array([[u0, 1], [u1, 1], [u1, 0], [u0, 0]], np.float32)))
    if cap:
        parts.append(
            _fan(np.array([[radius * math.cos(a), radius * math.sin(a)] for a in ang[:-1]]), height)
        )
    return Mesh.merge(parts)


def _fan(outline: np.ndarray, z: float) -> Mesh:
    """A flat convex polygon at height ``z`` facing +z, uv from its bounding square."""
    n = outline.shape[0]
    verts = np.concatenate([[[0.0, 0.0]], outline])
    tris = np.array([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)])
    half = np.abs(outline).max()
    uv = np.stack([(verts[:, 0] / half + 1) / 2, (1 - verts[:, 1] / half) / 2], axis=1)
    v3 = np.concatenate([verts, np.full((n + 1, 1), z)], axis=1)
    return Mesh(v3, tris, uv[tris])


def polygon_plate(outline: np.ndarray, thickness: float = 0.0) -> tuple[Mesh, Mesh]:
    """A flat convex plate in the local y-z plane, facing +x (a sign face).

    Args:
        outline: ``[N, 2]`` convex polygon ``(y, z)``. A viewer at +x looking towards -x has +y
            on their right, so the texture's u grows with y and its v falls with z.
        thickness: the plate extends from x = 0 (front) to x = -thickness.

    Returns:
        ``(front, back)``: the front face, whose uv maps the polygon's bounding square onto the
        unit texture as seen by the viewer, and the back and edges.
    """
    outline = np.asarray(outline, dtype=np.float64)
    n = outline.shape[0]
    ymin, zmin = outline.min(0)
    ymax, zmax = outline.max(0)
    side = max(ymax - ymin, zmax - zmin)
    yc, zc = (ymin + ymax) / 2, (zmin + zmax) / 2

    def uv_of(p: np.ndarray) -> np.ndarray:
        return np.stack([(p[:, 0] - yc) / side + 0.5, 0.5 - (p[:, 1] - zc) / side], axis=1)

    centre = np.array([[yc, zc]])
    verts2 = np.concatenate([centre, outline])
    tris = np.array([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)])
    front_v = np.concatenate([np.zeros((n + 1, 1)), verts2], axis=1)
    front = Mesh(front_v, tris, uv_of(verts2)[tris])
    back_v = front_v.copy()
    back_v[:, 0] = -thickness
    back = Mesh(back_v, tris[:, ::-1], uv_of(verts2)[tris[:, ::-1]])
    parts = [back]
    if thickness > 0:
        for i in range(n):
            a, b = outline[i], outline[(i + 1) % n]
            corners = np.array([[0, *a], [0, *b], [-thickness, *b], [-thickness, *a]])
            parts.append(quad(corners))
    return front, Mesh.merge(parts)


def sphere(radius: float, rings: int = 6, segments: int = 10) -> Mesh:
    """A low-polygon UV sphere centred at the origin."""
    verts, uvs_v = [], []
    for i in range(rings + 1):
        theta = math.pi * i / rings
        for j in range(segments + 1):
            phi = 2 * math.pi * j / segments
            verts.append(
                [
                    radius * math.sin(theta) * math.cos(phi),
                    radius * math.sin(theta) * math.sin(phi),
                    radius * math.cos(theta),
                ]
            )
            uvs_v.append([j / segments, i / rings])
    tris = []
    for i in range(rings):
        for j in range(segments):
            a = i * (segments + 1) + j
            b = a + segments + 1
            if i > 0:
                tris.append([a, b, a + 1])
            if i < rings - 1:
                tris.append([a + 1, b, b + 1])
    tris = np.array(tris)
    return Mesh(np.array(verts), tris, np.array(uvs_v)[tris])


def ribbon(left: np.ndarray, right: np.ndarray, u_len: np.ndarray, width_uv: float) -> Mesh:
    """A strip between two polylines ``[N, 3]`` (left and right edge, seen looking along the
    strip), facing up. ``u_len`` ``[N]`` is the texture coordinate along the strip."""
    n = left.shape[0]
    parts_v = np.concatenate([left, right])
    tris, uvs = [], []
    for i in range(n - 1):
        l0, l1, r0, r1 = i, i + 1, n + i, n + i + 1
        tris += [[r0, r1, l1], [r0, l1, l0]]
        uvs += [
            [[width_uv, u_len[i]], [width_uv, u_len[i + 1]], [0, u_len[i + 1]]],
            [[width_uv, u_len[i]], [0, u_len[i + 1]], [0, u_len[i]]],
        ]
    return Mesh(parts_v, np.array(tris).reshape(-1, 3), np.array(uvs).reshape(-1, 3, 2))
