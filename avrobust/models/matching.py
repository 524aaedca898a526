"""Which detection, if any, reports a target: one rule for campaigns, attack studies and the
evidence pictures. A detection reports a box when it overlaps it by at least
:data:`~avrobust.core.thresholds.MATCH_IOU` (2D IoU for camera boxes, BEV IoU for 3D ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torchvision.ops import box_iou

from avrobust.core.boxes import Box3D
from avrobust.core.detections import Detections
from avrobust.core.thresholds import MATCH_IOU
from avrobust.models.box3d_metrics import bev_iou


@dataclass(frozen=True)
class Match:
    """The detection that reports a target: its index in the detections, class name, score."""

    index: int
    name: str
    score: float


def overlaps(dets: Detections, box: torch.Tensor | None = None, box3d: Box3D | None = None):
    """``[N]`` overlap of each detection with one target: BEV IoU with ``box3d`` (a one-box
    :class:`Box3D`) for 3D detections, IoU with ``box`` (``[4]`` xyxy) for 2D ones."""
    if len(dets) == 0:
        return torch.zeros(0)
    if dets.kind == "3d":
        return bev_iou(dets.box3d(), box3d)[:, 0].float()
    return box_iou(dets.boxes.float(), box[None].to(dets.boxes).float())[:, 0]


def best_match(
    dets: Detections | None,
    box: torch.Tensor | None = None,
    box3d: Box3D | None = None,
    by: Literal["iou", "score"] = "iou",
    category: str | None = None,
    iou: float = MATCH_IOU,
) -> Match | None:
    """The detection reporting the target (overlap at least ``iou``; of ``category`` only when
    given), or None. ``by="iou"``: the most overlapping one (score breaks ties), as the
    campaigns judge a target; ``by="score"``: the most confident one, as a stack that reports
    its best detection at the sign does."""
    if dets is None or len(dets) == 0:
        return None
    if dets.kind != "3d" and box is not None and box[2] <= box[0]:
        return None  # the target is not in the image
    ov = overlaps(dets, box, box3d)
    names = [
        dets.class_names[int(k)] if int(k) < len(dets.class_names) else str(int(k))
        for k in dets.labels
    ]
    ok = ov >= iou
    if category is not None:
        ok &= torch.tensor([n == category for n in names], dtype=torch.bool)
    if not bool(ok.any()):
        return None
    if by == "iou":
        best = int(torch.argmax(ov * ok + dets.scores * 1e-3 * ok))
    else:
        hit = ok.nonzero().flatten()
        best = int(hit[dets.scores[hit].argmax()])
    return Match(best, names[best], float(dets.scores[best]))
