"""The cross-modal consistency check: a real object is seen by both sensors, so a detection
one sensor makes must be supported by the other.

- A camera detection (2D) needs LiDAR support. The returns whose projection falls in the
  central part of its box are compared with the rays the LiDAR aims there (from the sensor's
  channels and columns): too few returns where rays were due (a phantom in the sky or over a
  void), a physical height (box height x depth of the returns / focal length) outside what its
  category allows, or returns that do not lie on one surface (a picture of a pedestrian on the
  road: the returns spread along the road) reject it. With ``sign_rule``, a sign read as a
  class (the sign pipeline's output) must also have that class's face size and a sign's
  mounting height (``sign_geometry.py``); off by default: on the shipped pipeline it costs recall
  at close range, where the detector's own boxes are loose (docs/defences.md).
- A LiDAR detection (3D) needs camera support: a camera detection of the same category whose
  box overlaps the 3D box's projection (IoU at least ``min_iou``), from the shipped camera
  detector or the user's (``camera``).
Detections the other sensor cannot judge (too few rays due, outside the camera's view, beyond
``camera_range_m``, cut by the image border) pass unjudged.

Published attacks that beat single-sensor checks target exactly this one (Cao et al. 2021,
MSF-ADV: one object fooling both sensors); the frustum attack of ``attacks.lidar.spoof``, a
phantom inside a real object's camera box, is its adaptive attack.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from avrobust.core.boxes import Box3D
from avrobust.core.classes import SIGN_TYPES
from avrobust.core.components import DefenceBase
from avrobust.core.detections import Detections
from avrobust.core.errors import ConfigError
from avrobust.core.sensors import LidarSpec
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.defences.defended import Alarm, Defended
from avrobust.defences.sign_geometry import FACE_HEIGHT, geometry_alarm, lower_edge_height

# Physical heights (metres) a 2D box of each category may have, and a typical one for the
# ray count; signs: the face's height. Trucks and buses bound the car range above.
HEIGHTS = {
    "car": (0.9, 4.5, 1.5),
    "pedestrian": (0.7, 2.4, 1.7),
    "traffic_sign": (0.3, 1.6, 0.8),
}
INNER = 0.25  # of the box's width and height trimmed on each side: edges see the background


def category(name: str) -> str | None:
    if name in HEIGHTS:
        return name
    return "traffic_sign" if name in SIGN_TYPES else None


@dataclass
class Support:
    """One 2D detection's LiDAR evidence: rays due in its central part, returns found there,
    the share of them on one surface, and the implied physical height (nan: no returns)."""

    due: float
    found: int
    on_surface: float
    height_m: float
    depth: float = float("nan")


class CrossModalCheck(DefenceBase):
    name = "cross-modal-check"
    raises_alarms = True

    def __init__(
        self,
        min_support: float = 0.4,
        min_returns: float = 0.2,
        min_rays: float = 4.0,
        min_iou: float = 0.3,
        camera_range_m: float = 40.0,
        camera: str | None = None,
        score_threshold: float = DETECTION_SCORE,
        lidar: dict | None = None,
        sign_rule: bool = False,
        sign_tolerance: float = 0.1,
        pixel_error: float = 1.0,
    ) -> None:
        for name, v in (("min_support", min_support), ("min_returns", min_returns),
                        ("min_iou", min_iou)):  # fmt: skip
            if not 0 <= v <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {v}", field=name)
        self.min_support, self.min_returns, self.min_rays = min_support, min_returns, min_rays
        self.min_iou, self.camera_range_m = min_iou, camera_range_m
        self.camera_weights, self.score_threshold = camera, score_threshold
        self.spec = LidarSpec(**(lidar or {}))
        self.sign_rule = sign_rule
        self.sign_tolerance, self.pixel_error = sign_tolerance, pixel_error
        self._camera = None

    def provenance(self) -> dict:
        return {
            "min_support": self.min_support,
            "min_returns": self.min_returns,
            "min_iou": self.min_iou,
            "camera": self.camera_weights or "shipped camera detector",
            "sign_rule": self.sign_rule,
            "sign_tolerance": self.sign_tolerance,
            "pixel_error": self.pixel_error,
        }

    def wrap(self, model) -> Defended:
        def step(frame, dets):
            if dets is None or len(dets) == 0:
                return dets, []
            if dets.kind == "2d":
                return self._check_2d(frame, dets)
            return self._check_3d(frame, dets)

        return Defended(model, step)

    # --- camera detections need LiDAR ------------------------------------------------------
    def _check_2d(self, frame, dets: Detections):
        if frame.points is None:
            return dets, []
        keep = torch.ones(len(dets), dtype=torch.bool)
        alarms = []
        projected = frame.calibration.project_lidar(frame.points)  # once for every box
        for i in range(len(dets)):
            name = dets.class_names[int(dets.labels[i])]
            cat = category(name)
            if cat is None or _at_border(dets.boxes[i], frame):
                continue
            s = lidar_support(frame, dets.boxes[i], HEIGHTS[cat][2], self.spec, projected)
            if s.due < self.min_rays:
                continue
            lo, hi, _ = HEIGHTS[cat]
            if s.found < self.min_returns * s.due:
                keep[i] = False
                alarms.append(Alarm("no_lidar_return", f"{name}: {s.found} of {s.due:.0f} rays"))
            elif not lo <= s.height_m <= hi:
                keep[i] = False
                alarms.append(Alarm("implausible_size", f"{name} {s.height_m:.1f} m tall"))
            elif s.on_surface < self.min_support:
                keep[i] = False
                alarms.append(Alarm("no_surface", f"{name}: {s.on_surface:.0%} on one surface"))
            elif self.sign_rule and name in FACE_HEIGHT:
                edge = lower_edge_height(frame, dets.boxes[i], s.depth)
                bad = geometry_alarm(
                    name, s.height_m, edge, s.depth, frame.calibration.intrinsics.fy,
                    self.sign_tolerance, self.pixel_error,
                )  # fmt: skip
                if bad is not None:
                    keep[i] = False
                    alarms.append(Alarm(*bad))
        return dets.filter(keep), alarms

    # --- LiDAR detections need the camera --------------------------------------------------
    def _check_3d(self, frame, dets: Detections):
        support = self.camera_support(frame, dets)
        keep = torch.tensor([s is None or s >= self.min_iou for s in support], dtype=torch.bool)
        alarms = [
            Alarm("no_camera_support", f"{dets.class_names[int(lab)]}: best IoU {s:.2f}")
            for lab, s, k in zip(dets.labels, support, keep, strict=True)
            if not k
        ]
        return dets.filter(keep), alarms

    def camera_support(self, frame, dets: Detections) -> list[float | None]:
        """Per 3D detection: the best IoU of its projection (clipped to the image) with a camera
        detection of the same category, or None when the camera cannot judge it (no image,
        behind the camera, less than half of it in view, beyond ``camera_range_m``)."""
        out: list[float | None] = [None] * len(dets)
        if frame.image is None or len(dets) == 0:
            return out
        proj, valid = Box3D.from_tensor(dets.boxes).project(frame.calibration)
        k = frame.calibration.intrinsics
        full = proj.xyxy
        clipped = full.clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, k.width)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, k.height)
        in_view = valid & (_area(clipped) >= 0.5 * _area(full).clamp(min=1e-6))
        near = torch.linalg.vector_norm(dets.boxes[:, :2], dim=1) <= self.camera_range_m
        judged = (in_view & near).nonzero().flatten().tolist()
        if not judged:
            return out
        cam = self._witness()(frame)
        for i in judged:
            name = dets.class_names[int(dets.labels[i])]
            same = cam.labels == (cam.class_names.index(name) if name in cam.class_names else -1)
            iou = box_iou(clipped[i : i + 1], cam.boxes[same]) if same.any() else None
            out[i] = float(iou.max()) if iou is not None and iou.numel() else 0.0
        return out

    def _witness(self):
        if self._camera is None:
            from avrobust.models.victims import CameraDetectorVictim

            self._camera = CameraDetectorVictim(self.camera_weights, self.score_threshold)
        return self._camera


def lidar_support(
    frame, box: torch.Tensor, typical_height: float, spec: LidarSpec, projected=None
) -> Support:
    """The LiDAR evidence for a 2D box ``[4]``: the central part of the box (``INNER`` trimmed
    each side) against the returns projected into it and the rays the LiDAR aims there (its
    channels and columns, the box unprojected at the depth its category's typical height
    implies). ``projected``: the frame's ``calibration.project_lidar(points)``, when the
    caller judges several boxes of one frame."""
    calib = frame.calibration
    k = calib.intrinsics
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    x0, x1 = float(box[0]) + INNER * w, float(box[2]) - INNER * w
    y0, y1 = float(box[1]) + INNER * h, float(box[3]) - INNER * h
    uv, depth, visible = projected or calib.project_lidar(frame.points)
    inside = visible & (uv[:, 0] >= x0) & (uv[:, 0] <= x1) & (uv[:, 1] >= y0) & (uv[:, 1] <= y1)
    d = depth[inside]
    # Rays due: the box's corners as directions from the LiDAR, at the implied depth.
    guess = k.fy * typical_height / max(h, 1.0)
    corners = torch.tensor([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=torch.float64)
    pts = calib.camera_points_to_lidar(calib.unproject(corners, torch.full((4,), guess)))
    az = torch.atan2(pts[:, 1], pts[:, 0])
    el = torch.atan2(pts[:, 2], torch.linalg.vector_norm(pts[:, :2], dim=1))
    channels = torch.linspace(spec.upper_fov, spec.lower_fov, spec.channels, dtype=torch.float64)
    rings = int(((channels >= el.min()) & (channels <= el.max())).sum())
    step = spec.horizontal_fov / spec.columns
    due = rings * float(az.max() - az.min()) / step
    if len(d) == 0:
        return Support(due, 0, 0.0, float("nan"))
    near = float(torch.quantile(d.double(), 0.25))
    on = ((d - near).abs() <= max(1.5, 0.12 * near)).float().mean()
    return Support(due, len(d), float(on), h * near / k.fy, near)


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)


def _at_border(box: torch.Tensor, frame, margin: float = 2.0) -> bool:
    """A box cut by the image border: its height says nothing about the object's size."""
    k = frame.calibration.intrinsics
    return bool(
        box[0] <= margin or box[1] <= margin or box[2] >= k.width - margin
        or box[3] >= k.height - margin
    )  # fmt: skip
