"""Late camera-LiDAR fusion in the spirit of CLOCs (Pang et al. 2020): the LiDAR detector's
3D boxes are re-scored by how well the camera detector's 2D boxes support them.

Each 3D detection is projected into the image (:meth:`Box3D.project`, clipped to the image)
and paired with every 2D detection of the same class that overlaps it. A pair is described by
(IoU of the projected and the 2D box, 3D score, 2D score, range / 50 m); a 3D detection with no
overlapping 2D detection gets one pair (-1, 3D score, -1, range), as in CLOCs. A small
network maps each pair to a logit, the maximum over a detection's pairs is its fused logit,
and the fused score is its sigmoid. The boxes stay the LiDAR's (the camera has no depth);
detections the camera cannot see (projected outside the image) keep their LiDAR score.

Everything is differentiable in both detectors' scores and in the 2D boxes, so attacks can
optimise through the fusion.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import box_iou

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration

#: Per pair: IoU, 3D score, 2D score, range / RANGE_SCALE.
PAIR_FEATURES = 4
RANGE_SCALE = 50.0


def pair_features(
    boxes: Box3D,
    scores: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    dets2d: dict[str, torch.Tensor],
    classes2d: tuple[str, ...],
    calibration: Calibration,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(features [P, 4], owner [P], visible [K])``: the pairs of the ``K`` 3D detections
    (``owner`` indexes them) and whether each detection projects into the image."""
    k = calibration.intrinsics
    n = len(boxes)
    if n == 0:
        return (
            scores.new_zeros(0, PAIR_FEATURES),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=torch.bool),
        )
    proj, valid = boxes.project(calibration)
    xyxy = proj.clip(k.width, k.height).xyxy.to(scores.dtype)
    visible = valid & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    rng = torch.linalg.vector_norm(boxes.center[:, :2], dim=1).to(scores.dtype) / RANGE_SCALE
    b2 = dets2d["boxes"].to(scores.dtype)
    iou = scores.new_zeros(n, len(b2))
    real = (b2[:, 2] > b2[:, 0]) & (b2[:, 3] > b2[:, 1])
    if visible.any() and real.any():
        # Only boxes with area: a 0/0 IoU would poison every gradient through box_iou.
        rows, cols = visible.nonzero().flatten(), real.nonzero().flatten()
        iou = iou.index_put((rows[:, None], cols[None, :]), box_iou(xyxy[rows], b2[cols]))
    name3 = [classes[int(i)] for i in labels]
    name2 = [classes2d[int(j)] for j in dets2d["labels"]]
    same = torch.tensor([[a == b for b in name2] for a in name3], dtype=torch.bool).reshape(
        n, len(b2)
    )
    paired = (iou > 0) & same
    i, j = paired.nonzero(as_tuple=True)
    s2 = dets2d["scores"].to(scores.dtype)
    matched = torch.stack([iou[i, j], scores[i], s2[j], rng[i]], 1)
    lone = (visible & ~paired.any(1)).nonzero(as_tuple=True)[0]
    minus = scores.new_full((len(lone),), -1.0)
    unmatched = torch.stack([minus, scores[lone], minus, rng[lone]], 1)
    return torch.cat([matched, unmatched]), torch.cat([i, lone]), visible


class FusionHead(nn.Module):
    """CLOCs' fusion network as an MLP over pairs (its 1x1 convolutions, 4-18-36-36-1)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(PAIR_FEATURES, 18),
            nn.ReLU(),
            nn.Linear(18, 36),
            nn.ReLU(),
            nn.Linear(36, 36),
            nn.ReLU(),
            nn.Linear(36, 1),
        )

    def forward(self, features: torch.Tensor, owner: torch.Tensor, count: int) -> torch.Tensor:
        """``[count]`` fused logits: the maximum pair logit of each detection (``-inf`` for a
        detection without pairs)."""
        logits = self.net(features).squeeze(1)
        out = logits.new_full((count,), float("-inf"))
        return out.scatter_reduce(0, owner, logits, "amax", include_self=True)

    def fuse(
        self,
        scores: torch.Tensor,
        features: torch.Tensor,
        owner: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        """Fused scores: the network's for detections the camera can see, the LiDAR's for
        the rest."""
        logits = self(features, owner, len(scores))
        return torch.where(visible, logits.sigmoid(), scores)
