"""3D detection metrics on the KITTI protocol: BEV and 3D IoU of rotated boxes, and average
precision over 40 recall points (Simonelli et al. 2019, as KITTI has reported since 2019).

The overlap of two rotated rectangles comes from Shapely (a maintained polygon library);
torchmetrics has no rotated-box AP, so the matching and the 40-point AP are written here,
once, and tested against hand-computed cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import torch

from avrobust.core.boxes import Box3D


def _footprints(boxes: Box3D) -> np.ndarray:
    corners = boxes.corners()[:, :4, :2].double().numpy()  # the four bottom corners, in order
    return shapely.polygons(corners)


def bev_iou(a: Box3D, b: Box3D) -> torch.Tensor:
    """``[N, M]`` IoU of the boxes' footprints on the ground plane."""
    if len(a) == 0 or len(b) == 0:
        return torch.zeros(len(a), len(b), dtype=torch.float64)
    pa, pb = _footprints(a), _footprints(b)
    inter = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    area_a = (a.size[:, 0] * a.size[:, 1]).double().numpy()
    area_b = (b.size[:, 0] * b.size[:, 1]).double().numpy()
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.from_numpy(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))


def iou_3d(a: Box3D, b: Box3D) -> torch.Tensor:
    """``[N, M]`` IoU of the boxes' volumes (footprint overlap times height overlap)."""
    if len(a) == 0 or len(b) == 0:
        return torch.zeros(len(a), len(b), dtype=torch.float64)
    pa, pb = _footprints(a), _footprints(b)
    inter_bev = shapely.area(shapely.intersection(pa[:, None], pb[None, :]))
    za0 = (a.center[:, 2] - a.size[:, 2] / 2).double().numpy()
    za1 = (a.center[:, 2] + a.size[:, 2] / 2).double().numpy()
    zb0 = (b.center[:, 2] - b.size[:, 2] / 2).double().numpy()
    zb1 = (b.center[:, 2] + b.size[:, 2] / 2).double().numpy()
    dz = np.clip(np.minimum(za1[:, None], zb1[None]) - np.maximum(za0[:, None], zb0[None]), 0, None)
    inter = inter_bev * dz
    vol_a = a.size.prod(1).double().numpy()
    vol_b = b.size.prod(1).double().numpy()
    union = vol_a[:, None] + vol_b[None, :] - inter
    return torch.from_numpy(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))


@dataclass
class FrameBoxes:
    """One frame's boxes of one class: ground truth (``care``: scored; others are don't-care
    regions) and detections with scores."""

    truth: Box3D
    care: torch.Tensor
    detections: Box3D
    scores: torch.Tensor


def average_precision_40(
    frames: list[FrameBoxes], iou_threshold: float, kind: str = "bev"
) -> tuple[float | None, int]:
    """AP over 40 recall points and the number of scored objects (AP is None when there are
    none). A detection is a true positive when it overlaps an unmatched scored object at
    ``iou_threshold`` or more (best score first); one overlapping only a don't-care object is
    ignored; any other is a false positive."""
    overlap = bev_iou if kind == "bev" else iou_3d
    scores, hits = [], []
    total = 0
    for f in frames:
        care = f.care.bool()
        total += int(care.sum())
        if len(f.detections) == 0:
            continue
        order = torch.argsort(f.scores, descending=True)
        iou = overlap(f.detections[order], f.truth) if len(f.truth) else None
        taken = torch.zeros(len(f.truth), dtype=torch.bool)
        for k, d in enumerate(order.tolist()):
            s = float(f.scores[d])
            if iou is None:
                scores.append(s)
                hits.append(False)
                continue
            row = iou[k]
            cand = (row >= iou_threshold) & care & ~taken
            if cand.any():
                j = int(torch.argmax(torch.where(cand, row, torch.full_like(row, -1.0))))
                taken[j] = True
                scores.append(s)
                hits.append(True)
            elif ((row >= iou_threshold) & ~care).any():
                continue  # a detection of a don't-care object: neither right nor wrong
            else:
                scores.append(s)
                hits.append(False)
    if total == 0:
        return None, 0
    if not scores:
        return 0.0, total
    order = np.argsort(-np.asarray(scores), kind="stable")
    tp = np.cumsum(np.asarray(hits)[order])
    fp = np.cumsum(~np.asarray(hits)[order])
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1)
    # Interpolated precision: the best precision at any recall at least r.
    best = np.maximum.accumulate(precision[::-1])[::-1]
    ap = 0.0
    for r in np.linspace(1 / 40, 1.0, 40):
        idx = np.searchsorted(recall, r - 1e-12)
        ap += best[idx] if idx < len(best) else 0.0
    return float(ap / 40), total
