"""Differentiable ray-triangle intersection (Moller-Trumbore) in PyTorch: the range at which
each LiDAR ray first hits a mesh, with gradients to the mesh's vertices. Open3D's ray casting
is exact but not differentiable; attacks optimise a mesh's shape through this and are then
re-judged by re-casting with Open3D.
"""

from __future__ import annotations

import torch

EPS = 1e-9


def ray_triangle(
    origins: torch.Tensor, dirs: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor
) -> torch.Tensor:
    """``[R, T]`` distance along each ray (``origins``, ``dirs`` ``[R, 3]``, unit directions)
    to each triangle (``v0, v1, v2`` ``[T, 3]``), ``inf`` where it misses or lies behind."""
    e1, e2 = v1 - v0, v2 - v0  # [T, 3]
    p = torch.cross(
        dirs[:, None, :].expand(-1, len(e2), -1), e2[None].expand(len(dirs), -1, -1), dim=-1
    )
    det = (e1[None] * p).sum(-1)  # [R, T]
    ok = det.abs() > EPS
    inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
    s = origins[:, None, :] - v0[None]
    u = (s * p).sum(-1) * inv
    q = torch.cross(s, e1[None].expand_as(s), dim=-1)
    v = (dirs[:, None, :] * q).sum(-1) * inv
    t = (e2[None] * q).sum(-1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > EPS)
    return torch.where(hit, t, torch.full_like(t, float("inf")))


def first_hit(
    origins: torch.Tensor, dirs: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ray, the nearest hit distance on the mesh (``inf`` where none) and the triangle hit
    (-1 where none); differentiable in ``vertices``."""
    v0, v1, v2 = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    t = ray_triangle(origins, dirs, v0, v1, v2)
    best, tri = t.min(1)
    return best, torch.where(torch.isfinite(best), tri, torch.full_like(tri, -1))
