"""Point clouds to and from PLY and PCD through Open3D (intensity kept as a scalar field)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import torch

from avrobust.core.errors import DataError
from avrobust.core.files import atomic_path

FORMATS = (".ply", ".pcd")


def write_points(path: str | Path, points: torch.Tensor) -> Path:
    """Write ``[N, 4]`` points (x, y, z, intensity) as PLY or PCD, chosen by the suffix."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise DataError(
            f"unsupported point-cloud format {path.suffix!r}", file=path, allowed=", ".join(FORMATS)
        )
    p = points.detach().cpu().numpy()
    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(p[:, :3].astype(np.float32))
    pcd.point.intensity = o3d.core.Tensor(p[:, 3:4].astype(np.float32))
    with atomic_path(path) as tmp:
        if not o3d.t.io.write_point_cloud(str(tmp), pcd):
            raise DataError("Open3D could not write the point cloud", file=path)
    return path


def read_points(path: str | Path) -> torch.Tensor:
    """``[N, 4]`` float32 from a PLY or PCD file (intensity 0 when the file has none)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such point-cloud file", file=path)
    pcd = o3d.t.io.read_point_cloud(str(path))
    if "positions" not in pcd.point or pcd.point.positions.shape[0] == 0:
        raise DataError("no points could be read", file=path)
    xyz = pcd.point.positions.numpy().astype(np.float32)
    if "intensity" in pcd.point:
        inten = pcd.point.intensity.numpy().astype(np.float32).reshape(-1, 1)
    else:
        inten = np.zeros((xyz.shape[0], 1), np.float32)
    return torch.from_numpy(np.concatenate([xyz, inten], 1))
