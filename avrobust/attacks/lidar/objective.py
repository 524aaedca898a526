"""The three LiDAR-using victims seen by an attacker on one frame: a score for "an object of
this class is at (x, y)" that is differentiable in the points' coordinates and in per-point
keep weights, and the victim's real detections on an attacked sweep.

* ``LidarDetector``: the heatmap probability of the class at the cells around (x, y).
* ``PaintingDetector``: the same on points painted with the frame's camera scores (the camera
  is not attacked, so its score map is computed once per frame; a moved point is painted where
  it now projects).
* ``LateFusionDetector``: the LiDAR candidate at the best cell around (x, y), with the box its
  regression gives, paired with the frame's camera detections and re-scored by the fusion head.

The optimisation runs on a 25.6 m crop of the pillar grid around (x, y) (the detectors are
fully convolutional, so the score there barely depends on the rest of the sweep); success is
always judged by the whole victim on the whole sweep.
"""

from __future__ import annotations

import math

import torch

from avrobust.attacks.frozen import frozen
from avrobust.core.boxes import Box3D
from avrobust.core.frame import Frame
from avrobust.core.thresholds import DETECTION_SCORE
from avrobust.models.fusion_detectors import LateFusionDetector, PaintingDetector, detect_2d
from avrobust.models.late_fusion import pair_features
from avrobust.models.lidar_detector import BEVGrid, LidarDetector, cell_boxes
from avrobust.models.painting import paint, score_map

Victim = LidarDetector | PaintingDetector | LateFusionDetector
CROP = 128  # pillars (25.6 m), a multiple of the backbone's stride 8


class FrameObjective:
    """``victim`` on ``frame``: :meth:`score` for the attack, :meth:`detect` to judge it. Each
    call runs the victim in eval mode without parameter gradients and gives it back as the
    caller had it (a model being trained stays in training mode between attacks)."""

    def __init__(
        self, victim: Victim, frame: Frame, score_threshold: float = DETECTION_SCORE
    ) -> None:
        self.victim = victim
        self.frame = frame
        self.score_threshold = score_threshold
        self.lidar: LidarDetector = victim if isinstance(victim, LidarDetector) else victim.lidar
        self.classes = self.lidar.classes
        self.paint_map = None
        self.camera_dets = None
        if isinstance(victim, PaintingDetector | LateFusionDetector):
            if frame.image is None:
                raise ValueError("a fusion victim needs the frame's camera image")
            with torch.no_grad(), frozen(victim):
                dets = detect_2d(victim.camera, frame.image, victim.camera_threshold)
            if isinstance(victim, PaintingDetector):
                self.paint_map = score_map(
                    dets["boxes"],
                    dets["scores"],
                    dets["labels"],
                    victim.camera.classes,
                    victim.paint_classes,
                    tuple(frame.image.shape[-2:]),
                )
            else:
                self.camera_dets = dets

    def _inputs(self, points: torch.Tensor) -> torch.Tensor:
        if self.paint_map is None:
            return points
        return paint(points, self.frame.calibration, self.paint_map)

    def _crop(self, x: float, y: float) -> BEVGrid:
        g = self.lidar.grid
        ix = round((x - g.x_range[0]) / g.pillar) - CROP // 2
        iy = round((y - g.y_range[0]) / g.pillar) - CROP // 2
        ix = min(max(ix, 0), g.nx - CROP) // 8 * 8
        iy = min(max(iy, 0), g.ny - CROP) // 8 * 8
        return g.crop(ix, iy, CROP)

    def score(
        self,
        points: torch.Tensor,
        x: float,
        y: float,
        category: str | None,
        weights: torch.Tensor | None = None,
        radius: float = 1.5,
    ) -> torch.Tensor:
        """The victim's probability that an object of ``category`` (of any class: ``None``)
        is centred within ``radius`` metres of ``(x, y)`` (LiDAR frame), differentiable in
        ``points`` and in the per-point ``weights``."""
        with frozen(self.victim):
            return self._score(points, x, y, category, weights, radius)

    def _score(self, points, x, y, category, weights, radius) -> torch.Tensor:
        crop = self._crop(x, y)
        canvas = self.lidar.canvas(
            [self._inputs(points)], [crop], None if weights is None else [weights]
        )
        out = self.lidar.head(canvas)
        g = self.lidar.grid
        h, w = out["heatmap"].shape[-2:]
        cx = crop.x_range[0] + (torch.arange(h) + 0.5) * g.cell
        cy = crop.y_range[0] + (torch.arange(w) + 0.5) * g.cell
        near = ((cx[:, None] - x) ** 2 + (cy[None, :] - y) ** 2) <= radius**2
        heat = out["heatmap"][0]
        logits = (heat.amax(0) if category is None else heat[self.classes.index(category)])[near]
        if logits.numel() == 0:
            # (x, y) is off the detector's grid (beyond its range): it cannot report anything
            # there. Zero, still joined to the graph, so a gradient step is a no-op.
            return heat.sum() * 0.0
        best = int(logits.argmax())
        s3d = logits[best].sigmoid()
        if self.camera_dets is None:
            return s3d
        # Late fusion: the candidate's own box, paired with the camera's detections.
        i, j = (int(v) for v in near.nonzero()[best])
        cls = int(heat[:, i, j].argmax()) if category is None else self.classes.index(category)
        origin = (crop.x_range[0] - g.x_range[0], crop.y_range[0] - g.y_range[0])
        box = cell_boxes(
            out["regress"][0, :, i, j][:, None], torch.tensor([i]), torch.tensor([j]), g, origin
        )
        victim: LateFusionDetector = self.victim  # type: ignore[assignment]
        feats, owner, visible = pair_features(
            box,
            s3d[None],
            torch.tensor([cls]),
            self.classes,
            self.camera_dets,
            victim.camera.classes,
            self.frame.calibration,
        )
        return victim.head.fuse(s3d[None], feats, owner, visible)[0]

    @torch.no_grad()
    def detect(self, points: torch.Tensor) -> tuple[Box3D, torch.Tensor, torch.Tensor]:
        """The whole victim's detections on ``points`` (score at least the threshold)."""
        with frozen(self.victim):
            if isinstance(self.victim, LidarDetector):
                ((boxes, scores, labels),) = self.victim.detect([points], self.score_threshold)
            else:
                boxes, scores, labels = self.victim.detect(
                    self.frame.image, points, self.frame.calibration
                )
        keep = scores >= self.score_threshold
        return boxes[keep], scores[keep], labels[keep]


def found_near(
    dets: tuple[Box3D, torch.Tensor, torch.Tensor], cls: int, x: float, y: float, radius: float
) -> bool:
    """Whether a detection of class ``cls`` is centred within ``radius`` m of ``(x, y)``."""
    boxes, _, labels = dets
    if len(boxes) == 0:
        return False
    d = torch.hypot(boxes.center[:, 0] - x, boxes.center[:, 1] - y)
    return bool(((labels == cls) & (d <= radius)).any())


def overlaps(dets: tuple[Box3D, torch.Tensor, torch.Tensor], cls: int | None, box: Box3D) -> bool:
    """Whether a detection of class ``cls`` (any class: ``None``) overlaps ``box`` at all in
    bird's-eye view."""
    from avrobust.models.box3d_metrics import bev_iou

    boxes, _, labels = dets
    keep = labels == cls if cls is not None else torch.ones_like(labels, dtype=torch.bool)
    if not bool(keep.any()):
        return False
    return bool((bev_iou(boxes[keep], box) > 0.0).any())


def ground_height(points: torch.Tensor, x: float, y: float, default: float) -> float:
    """The road's height (LiDAR frame) around ``(x, y)``: a low percentile of the returns
    within 3 m, or ``default`` where there are too few."""
    near = torch.hypot(points[:, 0] - x, points[:, 1] - y) < 3.0
    if int(near.sum()) < 10:
        return default
    return float(torch.quantile(points[near, 2].double(), 0.1))


def bearing(x: float, y: float) -> float:
    return math.degrees(math.atan2(y, x))
