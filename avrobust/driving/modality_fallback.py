"""The ``camera-fallback`` defence: when the LiDAR side (a LiDAR or fusion detector) misses a
road user the camera sees, fall back to the camera for it. A fail-safe reaction (a detection
missing in one modality falls back to the other), so it lives with the closed loop's ranging.

Every camera detection of a car or pedestrian at or above the score threshold whose box no 3D
detection's projection overlaps (IoU under ``min_iou``) is ranged on the ground plane (its
lower edge, as the closed loop ranges camera percepts: :func:`avrobust.driving.percepts.
ground_percept`) and added to the 3D detections as a box of its class's typical size, with a
``camera_only`` alarm naming it. The car then brakes for an object its LiDAR lost, whether to
weather, a dark surface or an attacker erasing returns (PRA-style removal).

The price is the camera's own errors: a camera phantom (a poster, an appearing patch) is now
taken as real, where the cross-modal check would drop it. The two are opposite answers to one
disagreement; a campaign measures which costs less where.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import box_iou

from avrobust.core.boxes import Box3D
from avrobust.core.components import Alarm, DefenceBase
from avrobust.core.conventions import invert_pose, transform_points
from avrobust.core.detections import Detections
from avrobust.core.errors import ConfigError
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.defences.defended import Defended
from avrobust.driving.percepts import ground_percept

KIND = "camera_only"
#: Height of the added box, metres (the footprint comes from the percepts' table).
HEIGHT = {"car": 1.5, "pedestrian": 1.75}


class CameraFallback(DefenceBase):
    name = "camera-fallback"
    raises_alarms = True

    def __init__(
        self,
        min_iou: float = 0.1,
        camera: str | None = None,
        score_threshold: float = DETECTION_SCORE,
        max_range_m: float = 60.0,
    ) -> None:
        if not 0 <= min_iou <= 1:
            raise ConfigError(f"min_iou must be in [0, 1], got {min_iou}", field="min_iou")
        if max_range_m <= 0:
            raise ConfigError("max_range_m must be positive", field="max_range_m")
        self.min_iou, self.camera_weights = float(min_iou), camera
        self.score_threshold, self.max_range_m = float(score_threshold), float(max_range_m)
        self._camera = None

    def provenance(self) -> dict:
        return {
            "min_iou": self.min_iou,
            "camera": self.camera_weights or "shipped camera detector",
            "score_threshold": self.score_threshold,
            "max_range_m": self.max_range_m,
        }

    def wrap(self, model) -> Defended:
        def step(frame, dets):
            if dets is None or dets.kind != "3d" or frame.image is None:
                return dets, []
            return self.fall_back(frame, dets)

        return Defended(model, step)

    def fall_back(self, frame, dets: Detections) -> tuple[Detections, list[Alarm]]:
        """``dets`` with the camera-only road users added, and an alarm for each."""
        cam = self._witness()(frame)
        proj = torch.zeros(0, 4)
        if len(dets):
            p, valid = Box3D.from_tensor(dets.boxes).project(frame.calibration)
            k = frame.calibration.intrinsics
            proj = p.clip(k.width, k.height).xyxy.float()[valid]
        added, alarms, poses = [], [], None
        for i in range(len(cam)):
            name = cam.class_names[int(cam.labels[i])]
            if name not in HEIGHT or name not in dets.class_names:
                continue
            box = cam.boxes[i]
            if len(proj) and float(box_iou(box[None], proj).max()) >= self.min_iou:
                continue  # the LiDAR side sees it
            poses = poses or _inverse_poses(frame)
            row = self._ranged(frame, box, name, poses)
            if row is None:
                continue
            added.append((row, float(cam.scores[i]), dets.class_names.index(name)))
            alarms.append(
                Alarm(
                    KIND,
                    f"{name} at {float(row[0]):.0f} m seen by the camera only",
                    len(dets) + len(added) - 1,
                )
            )
        if not added:
            return dets, []
        return (
            Detections(
                torch.cat([dets.boxes, torch.stack([a[0] for a in added])]),
                torch.cat([dets.scores, torch.tensor([a[1] for a in added])]),
                torch.cat([dets.labels, torch.tensor([a[2] for a in added])]),
                "3d",
                dets.class_names,
            ),
            alarms,
        )

    def _ranged(self, frame, box: torch.Tensor, name: str, poses) -> torch.Tensor | None:
        """The camera box ranged on the ground, as a ``[7]`` LiDAR-frame box, or None.
        ``poses``: the frame's :func:`_inverse_poses`."""
        p = ground_percept(frame, box, name, 1.0)
        if p is None:
            return None
        to_ego, to_lidar, yaw_offset = poses
        h = HEIGHT[name]
        ego = transform_points(to_ego, torch.tensor([p.x, p.y, 0.0], dtype=torch.float64))
        ego[2] = h / 2
        c = transform_points(to_lidar, ego)
        if float(torch.linalg.vector_norm(c[:2])) > self.max_range_m:
            return None
        return torch.tensor(
            [*c.tolist(), p.length, p.width, h, p.yaw - yaw_offset], dtype=torch.float32
        )

    def _witness(self):
        if self._camera is None:
            from avrobust.models.victims import CameraDetectorVictim

            self._camera = CameraDetectorVictim(self.camera_weights, self.score_threshold)
        return self._camera


def _inverse_poses(frame) -> tuple[torch.Tensor, torch.Tensor, float]:
    """World to ego, ego to LiDAR, and the LiDAR frame's heading in the world (radians):
    once per frame, for every box the fallback adds."""
    ego, lidar = frame.ego_pose.to(torch.float64), frame.calibration.lidar_pose.to(torch.float64)
    yaw = math.atan2(float(ego[1, 0]), float(ego[0, 0])) + math.atan2(
        float(lidar[1, 0]), float(lidar[0, 0])
    )
    return invert_pose(ego), invert_pose(lidar), yaw
