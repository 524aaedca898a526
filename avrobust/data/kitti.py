"""KITTI object-detection layout: ``image_2/*.png``, ``velodyne/*.bin``, ``label_2/*.txt`` and
``calib/*.txt``, as the KITTI devkit and most 3D detection tools read them.

Our camera is the rectified camera 2 (``R0_rect`` is the identity, ``P2 = K [I | 0]``) and our
LiDAR is the Velodyne (``Tr_velo_to_cam = Calibration.lidar_to_camera``). Labels carry the
types ``Car``, ``Pedestrian`` and ``TrafficSign`` (not a KITTI class; tools that only know KITTI's
classes skip it). Occlusion levels come from the visible fraction (0: > 80%, 1: 50-80%, 2: < 50%),
truncation from the share of the projected 3D box outside the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration, CameraIntrinsics
from avrobust.core.errors import DataError
from avrobust.core.files import atomic_write
from avrobust.core.frame import Frame
from avrobust.core.images import save_png, to_rgb8

KITTI_TYPES = {"car": "Car", "pedestrian": "Pedestrian", "traffic_sign": "TrafficSign"}
CATEGORIES = {v: k for k, v in KITTI_TYPES.items()}


@dataclass
class KittiLabel:
    """One line of a KITTI label file (camera coordinates, bottom centre, metres)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]  # height, width, length
    location: tuple[float, float, float]  # x, y, z of the bottom centre in camera coordinates
    rotation_y: float
    score: float | None = None

    def to_line(self) -> str:
        vals = [
            self.type,
            f"{self.truncated:.2f}",
            str(self.occluded),
            f"{self.alpha:.2f}",
            *(f"{v:.2f}" for v in self.bbox),
            *(f"{v:.2f}" for v in self.dimensions),
            *(f"{v:.2f}" for v in self.location),
            f"{self.rotation_y:.2f}",
        ]
        if self.score is not None:
            vals.append(f"{self.score:.4f}")
        return " ".join(vals)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def frame_labels(frame: Frame, min_visible: float = 0.0) -> list[KittiLabel]:
    """KITTI labels of a frame's ground truth (objects with a visible 2D box)."""
    t = frame.truth
    calib = frame.calibration
    k = calib.intrinsics
    labels = []
    projected, valid = t.boxes_3d.project(calib)
    for i, cat in enumerate(t.categories):
        box2d = t.boxes_2d.xyxy[i]
        if cat not in KITTI_TYPES or box2d[2] <= box2d[0] or t.visible_fraction[i] < min_visible:
            continue
        b = t.boxes_3d[i]
        length, w, h = (float(v) for v in b.size[0])
        bottom = b.center.double() - torch.tensor([[0.0, 0.0, h / 2]], dtype=torch.float64)
        loc = calib.lidar_points_to_camera(bottom)[0]
        yaw = float(b.yaw[0])
        heading = torch.tensor([[math.cos(yaw), math.sin(yaw), 0.0]], dtype=torch.float64)
        d = heading @ calib.lidar_to_camera[:3, :3].T
        ry = _wrap(math.atan2(-float(d[0, 2]), float(d[0, 0])))
        alpha = _wrap(ry - math.atan2(float(loc[0]), float(loc[2])))
        full = projected.xyxy[i]
        area = float((full[2] - full[0]) * (full[3] - full[1])) if valid[i] else 0.0
        inside = projected[i].clip(k.width, k.height).area.item() if valid[i] else 0.0
        truncated = 0.0 if area <= 0 else max(0.0, min(1.0, 1.0 - inside / area))
        vis = float(t.visible_fraction[i])
        occluded = 0 if vis > 0.8 else (1 if vis > 0.5 else 2)
        labels.append(
            KittiLabel(
                KITTI_TYPES[cat],
                truncated,
                occluded,
                alpha,
                tuple(float(v) for v in box2d),
                (h, w, length),
                tuple(float(v) for v in loc),
                ry,
            )
        )
    return labels


def _calib_text(calib: Calibration) -> str:
    p2 = np.zeros((3, 4))
    p2[:, :3] = calib.intrinsics.matrix.numpy()
    tr = calib.lidar_to_camera.numpy()[:3, :]
    rows = {
        "P0": p2,
        "P1": p2,
        "P2": p2,
        "P3": p2,
        "R0_rect": np.eye(3),
        "Tr_velo_to_cam": tr,
        "Tr_imu_to_velo": np.eye(4)[:3],
    }
    return "".join(f"{k}: {' '.join(f'{v:.12e}' for v in m.flatten())}\n" for k, m in rows.items())


def write_frame(root: str | Path, frame: Frame, name: str | None = None) -> str:
    """Write one frame into a KITTI tree at ``root``; returns its sample name."""
    root = Path(root)
    name = name or f"{frame.index:06d}"
    if frame.image is not None:
        save_png(root / "image_2" / f"{name}.png", to_rgb8(frame.image))
    if frame.points is not None:
        with atomic_write(root / "velodyne" / f"{name}.bin") as fh:
            fh.write(frame.points.detach().cpu().numpy().astype("<f4").tobytes())
    with atomic_write(root / "calib" / f"{name}.txt", "w") as fh:
        fh.write(_calib_text(frame.calibration))
    with atomic_write(root / "label_2" / f"{name}.txt", "w") as fh:
        fh.write("".join(lab.to_line() + "\n" for lab in frame_labels(frame)))
    return name


# --- reading -------------------------------------------------------------------------------
def read_points(path: str | Path) -> torch.Tensor:
    """``[N, 4]`` float32 points of a KITTI ``.bin`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such point-cloud file", file=path)
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise DataError(
            f"size {raw.size * 4} bytes is not a multiple of 16 (x, y, z, i float32)", file=path
        )
    return torch.from_numpy(raw.reshape(-1, 4).copy())


def read_calib(path: str | Path, width: int, height: int) -> Calibration:
    """A :class:`Calibration` from a KITTI calib file (camera 2 and the Velodyne)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such calibration file", file=path)
    rows: dict[str, np.ndarray] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        key, _, vals = line.partition(":")
        try:
            rows[key.strip()] = np.array([float(v) for v in vals.split()])
        except ValueError:
            raise DataError("not a number", file=path, line=n, field=key.strip()) from None
        if not np.isfinite(rows[key.strip()]).all():
            raise DataError("not a finite number", file=path, line=n, field=key.strip())
    for key, size in (("P2", 12), ("Tr_velo_to_cam", 12)):
        if key not in rows or rows[key].size != size:
            raise DataError(
                f"missing or malformed {key}", file=path, field=key, allowed=f"{size} numbers"
            )
    p2 = rows["P2"].reshape(3, 4)
    r0 = rows.get("R0_rect", np.eye(3).flatten()).reshape(3, 3)
    tr = np.eye(4)
    tr[:3] = rows["Tr_velo_to_cam"].reshape(3, 4)
    rect = np.eye(4)
    rect[:3, :3] = r0
    # P2 = K [I | t]: camera 2 sits at -t from the rectified reference camera (KITTI's cameras
    # share one rectified frame; P2's fourth column is K t, about 6 cm along x). Keeping t
    # makes our projection equal P2 @ R0_rect @ Tr_velo_to_cam exactly, not 3-5 px off.
    k = p2[:, :3]
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(k, p2[:, 3])
    velo_to_cam = shift @ rect @ tr  # LiDAR to camera 2's optical frame
    intr = CameraIntrinsics.from_matrix(torch.tensor(k), width, height)
    # Our Calibration is ego-referenced; put the ego at the LiDAR and the camera where
    # velo_to_cam says, converting its optical axes back to the body convention.
    from avrobust.core.conventions import BODY_TO_OPTICAL, invert_pose

    cam_to_velo = invert_pose(torch.tensor(velo_to_cam))
    camera_pose = torch.eye(4, dtype=torch.float64)
    camera_pose[:3, :3] = cam_to_velo[:3, :3] @ BODY_TO_OPTICAL
    camera_pose[:3, 3] = cam_to_velo[:3, 3]
    return Calibration(intr, camera_pose=camera_pose, lidar_pose=torch.eye(4, dtype=torch.float64))


# The numeric fields of a KITTI label line, after the type (the devkit's names).
LABEL_FIELDS = (
    "truncated", "occluded", "alpha", "bbox.left", "bbox.top", "bbox.right", "bbox.bottom",
    "dimensions.height", "dimensions.width", "dimensions.length", "location.x", "location.y",
    "location.z", "rotation_y", "score",
)  # fmt: skip


def read_labels(path: str | Path) -> list[KittiLabel]:
    path = Path(path)
    if not path.is_file():
        raise DataError("no such label file", file=path)
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (15, 16):
            raise DataError(f"expected 15 or 16 fields, got {len(parts)}", file=path, line=n)
        try:
            v = [float(x) for x in parts[1:]]
        except ValueError:
            raise DataError("a field is not a number", file=path, line=n) from None
        bad = [LABEL_FIELDS[i] for i, x in enumerate(v) if not math.isfinite(x)]
        if bad:
            raise DataError("not a finite number", file=path, line=n, field=bad[0])
        out.append(
            KittiLabel(
                parts[0],
                v[0],
                int(v[1]),
                v[2],
                tuple(v[3:7]),
                tuple(v[7:10]),
                tuple(v[10:13]),
                v[13],
                v[14] if len(v) > 14 else None,
            )
        )
    return out


def labels_to_boxes(labels: list[KittiLabel], calib: Calibration) -> Box3D:
    """Label boxes back in the LiDAR frame (geometric centres)."""
    if not labels:
        return Box3D.cat([])
    centers, sizes, yaws = [], [], []
    for lab in labels:
        h, w, length = lab.dimensions
        bottom = torch.tensor([lab.location], dtype=torch.float64)
        c = calib.camera_points_to_lidar(bottom)[0] + torch.tensor(
            [0.0, 0.0, h / 2], dtype=torch.float64
        )
        d = torch.tensor(
            [math.cos(lab.rotation_y), 0.0, -math.sin(lab.rotation_y)], dtype=torch.float64
        )
        dl = calib.camera_to_lidar[:3, :3] @ d
        centers.append(c)
        sizes.append([length, w, h])
        yaws.append(math.atan2(float(dl[1]), float(dl[0])))
    return Box3D(
        torch.stack(centers),
        torch.tensor(sizes, dtype=torch.float64),
        torch.tensor(yaws, dtype=torch.float64),
    )
