"""A KITTI-layout set of LiDAR sweeps with their 3D boxes (LiDAR frame), in memory.

KITTI labels exist only for objects the camera sees, so each sample also carries the camera's
horizontal field of view on the ground (a wedge from the LiDAR origin): training masks the
loss outside it and evaluation scores only inside it, as KITTI-trained detectors do.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.errors import DataError
from avrobust.data import kitti
from avrobust.models.lidar_detector import LIDAR_CLASSES, BEVGrid


@dataclass
class LidarSample:
    """One sweep: ``points`` ``[N, 4]`` (inside the grid), ``boxes`` (LiDAR frame),
    ``labels`` (indices into the set's classes), ``occluded`` (KITTI level), ``num_points``
    (returns inside each box), the camera wedge (``fov_axis`` direction and ``fov_half``
    half-angle, radians), the weather preset and the frame's ``calibration`` (``None`` once
    augmentation has moved the points away from it)."""

    points: torch.Tensor
    boxes: Box3D
    labels: torch.Tensor
    occluded: torch.Tensor
    num_points: torch.Tensor
    fov_axis: float
    fov_half: float
    weather: str
    name: str
    calibration: Calibration | None = None

    def in_fov(self, xy: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
        """Whether ground points ``[M, 2]`` lie inside the camera's wedge."""
        ang = torch.atan2(xy[:, 1], xy[:, 0]) - self.fov_axis
        ang = torch.remainder(ang + math.pi, 2 * math.pi) - math.pi
        return ang.abs() <= self.fov_half - margin


def _camera_size(folder: Path, first: str) -> tuple[int, int]:
    """The camera's image size: from ``dataset.json`` (avrobust's own trees), else from the
    first image's PNG header (a KITTI tree: 1242 x 375, not a guess)."""
    meta = folder / "dataset.json"
    if meta.exists():
        try:
            size = json.loads(meta.read_text())
            return int(size["width"]), int(size["height"])
        except (ValueError, KeyError, TypeError):
            raise DataError(
                "dataset.json lacks a numeric width and height", file=meta, field="width"
            ) from None
    image = folder / "image_2" / f"{first}.png"
    if not image.exists():
        raise DataError("no dataset.json and no image to read the camera's size from", file=folder)
    with image.open("rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise DataError("not a PNG image", file=image)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def load_lidar_set(
    folder: str | Path,
    classes: tuple[str, ...] = LIDAR_CLASSES,
    grid: BEVGrid | None = None,
    limit: int | None = None,
) -> list[LidarSample]:
    """Read ``velodyne``, ``label_2`` and ``calib`` (and ``meta`` for the weather)."""
    folder = Path(folder)
    grid = grid or BEVGrid()
    velo = folder / "velodyne"
    if not velo.is_dir():
        raise DataError(
            "no velodyne folder: build the dataset with --lidar (avrobust dataset build)",
            file=folder,
        )
    names = sorted(p.stem for p in velo.glob("*.bin"))[:limit]
    if not names:
        raise DataError("no sweeps in velodyne", file=velo)
    width, height = _camera_size(folder, names[0])
    out = []
    for n in names:
        pts = kitti.read_points(velo / f"{n}.bin")
        pts = pts[grid.in_range(pts)]
        calib = kitti.read_calib(folder / "calib" / f"{n}.txt", width, height)
        labels = [
            lab
            for lab in kitti.read_labels(folder / "label_2" / f"{n}.txt")
            if kitti.CATEGORIES.get(lab.type) in classes
        ]
        b = kitti.labels_to_boxes(labels, calib)
        boxes = Box3D(b.center.float(), b.size.float(), b.yaw.float())
        lab = torch.tensor(
            [classes.index(kitti.CATEGORIES[x.type]) for x in labels], dtype=torch.long
        )
        occ = torch.tensor([x.occluded for x in labels], dtype=torch.long)
        counts = boxes.contains(pts).sum(1) if len(boxes) else torch.zeros(0, dtype=torch.long)
        # The camera's optical axis and half field of view, in the LiDAR frame.
        cam_to_lidar = calib.camera_to_lidar
        axis = cam_to_lidar[:3, :3] @ torch.tensor([0.0, 0.0, 1.0], dtype=cam_to_lidar.dtype)
        k = calib.intrinsics
        half = math.atan2(k.width / 2, float(k.fx))
        meta = folder / "meta" / f"{n}.json"
        weather = json.loads(meta.read_text())["conditions"]["weather"] if meta.exists() else ""
        out.append(
            LidarSample(
                pts.float(),
                boxes,
                lab,
                occ,
                counts,
                math.atan2(float(axis[1]), float(axis[0])),
                half,
                weather,
                n,
                calib,
            )
        )
    return out
