"""The LiDAR detector's numbers on the KITTI protocol: BEV and 3D AP over 40 recall points at
IoU 0.7 for cars and 0.5 for pedestrians, within a range, by condition group and range band.

An object is scored when it lies inside the camera's field of view (where labels exist),
within the range or band, at most partly occluded (KITTI level 0 or 1) and hit by at least
``min_points`` returns; every other labelled object is a don't-care region. Detections outside
the camera's field of view are dropped (nothing is labelled there).
"""

from __future__ import annotations

import torch

from avrobust.core.boxes import Box3D
from avrobust.core.weather import CONDITION_GROUPS, condition_group
from avrobust.models.box3d_metrics import FrameBoxes, average_precision_40
from avrobust.models.lidar_data import LidarSample

IOU = {"car": 0.7, "pedestrian": 0.5}
BANDS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.0))

Prediction = tuple[Box3D, torch.Tensor, torch.Tensor]


def scored_mask(s: LidarSample, lo: float, hi: float, min_points: int = 5) -> torch.Tensor:
    if len(s.boxes) == 0:
        return torch.zeros(0, dtype=torch.bool)
    d = torch.linalg.vector_norm(s.boxes.center[:, :2], dim=1)
    return (
        s.in_fov(s.boxes.center[:, :2])
        & (d >= lo)
        & (d < hi)
        & (s.occluded <= 1)
        & (s.num_points >= min_points)
    )


def lidar_ap(
    preds: list[Prediction],
    samples: list[LidarSample],
    classes: tuple[str, ...],
    max_distance: float = 40.0,
    min_distance: float = 0.0,
) -> dict:
    """BEV and 3D AP40 per class and the scored object counts."""
    out: dict = {"bev": {}, "3d": {}, "objects": {}, "frames": len(samples)}
    for c, name in enumerate(classes):
        frames = []
        for (boxes, scores, labels), s in zip(preds, samples, strict=True):
            keep = labels == c
            det = boxes[keep] if len(boxes) else boxes
            sc = scores[keep]
            if len(det):
                inside = s.in_fov(det.center[:, :2])
                det, sc = det[inside], sc[inside]
            mine = s.labels == c
            truth = s.boxes[mine] if len(s.boxes) else s.boxes
            care = (
                scored_mask(s, min_distance, max_distance)[mine]
                if len(s.boxes)
                else torch.zeros(0, dtype=torch.bool)
            )
            frames.append(FrameBoxes(truth, care, det, sc))
        thr = IOU.get(name, 0.5)
        bev, n = average_precision_40(frames, thr, "bev")
        ap3, _ = average_precision_40(frames, thr, "3d")
        out["bev"][name] = None if bev is None else round(bev, 4)
        out["3d"][name] = None if ap3 is None else round(ap3, 4)
        out["objects"][name] = n
    return out


def lidar_report(
    preds: list[Prediction],
    samples: list[LidarSample],
    classes: tuple[str, ...],
    max_distance: float = 40.0,
) -> dict:
    """Each condition group within ``max_distance`` and clear weather by range band."""
    groups = [condition_group(s.weather) if s.weather else "clear" for s in samples]
    report: dict = {"max_distance": max_distance, "by_condition": {}, "clear_by_distance": {}}
    for g in CONDITION_GROUPS:
        idx = [i for i, x in enumerate(groups) if x == g]
        if idx:
            report["by_condition"][g] = lidar_ap(
                [preds[i] for i in idx], [samples[i] for i in idx], classes, max_distance
            )
    report["clear"] = report["by_condition"].get("clear")
    idx = [i for i, x in enumerate(groups) if x == "clear"]
    for lo, hi in BANDS:
        report["clear_by_distance"][f"{lo:g}-{hi:g} m"] = lidar_ap(
            [preds[i] for i in idx], [samples[i] for i in idx], classes, hi, lo
        )
    return report
