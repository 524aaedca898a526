"""Measuring the free-space check: its free-space counts for spoofed phantoms that fooled the
victim (attack success with the check, by threshold) and for the victim's true detections on
clean frames (its false-positive rate, by threshold), so one run gives the whole ROC curve.

A spoofing case is the white-box (or black-box) phantom attack of ``attacks.lidar.spoof`` with
its 60-return budget; the check is applied afterwards and the attack does not know of it
(non-adaptive). The adaptive case is ``attacks.lidar.adaptive.spoof_past_free_space``: the same
budget spent on the rays the check counts (``method="adaptive"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.core.sensors import LidarSpec
from avrobust.defences.free_space import DEFAULT_MIN_RAYS, free_space, rejects
from avrobust.evaluation.lidar_attack import SPOOF_RADIUS, spoof_frames
from avrobust.evaluation.viewpoints import SweepFrames
from avrobust.models.box3d_metrics import bev_iou


@dataclass
class CheckSamples:
    """Free-space counts ``(through, stopped)`` of spoofed phantoms that fooled the victim, of
    the victim's true detections on clean frames, and how many spoofing cases were tried."""

    spoofed: list[tuple[int, int]] = field(default_factory=list)
    genuine: list[tuple[int, int]] = field(default_factory=list)
    cases: int = 0
    failed_attacks: int = 0

    def point(self, threshold: float, min_rays: int = DEFAULT_MIN_RAYS) -> dict:
        """Attack success without and with the check, and the check's false-positive rate."""
        passed = sum(not rejects(t, s, threshold, min_rays) for t, s in self.spoofed)
        fp = sum(rejects(t, s, threshold, min_rays) for t, s in self.genuine)
        return {
            "threshold": threshold,
            "success_undefended": len(self.spoofed) / max(self.cases, 1),
            "success_defended": passed / max(self.cases, 1),
            "detection_rate": 1 - passed / max(len(self.spoofed), 1),
            "false_positive_rate": fp / max(len(self.genuine), 1),
            "genuine": len(self.genuine),
            "cases": self.cases,
        }


def spoof_samples(
    victim,
    frames: SweepFrames,
    spec: LidarSpec,
    samples: CheckSamples,
    distances: tuple[float, ...] = (5.0, 7.5, 10.0),
    method: str = "white-box",
    points: int = 60,
    steps: int = 60,
    category: str = "car",
    progress: Callable[[int], None] | None = None,
) -> None:
    """Spoof a phantom straight ahead at each distance of each frame (the spoofing cases of
    ``evaluation.lidar_attack.spoof_frames``); record the free-space counts of every phantom
    the victim reports."""

    def on_case(res, dets, cls, x, y, ok) -> None:
        if not ok:
            return
        boxes, _, labels = dets
        near = torch.hypot(boxes.center[:, 0] - x, boxes.center[:, 1] - y) <= SPOOF_RADIUS
        hit = (near & (labels == cls)).nonzero().flatten()
        fs = free_space(res.sweep.points, boxes[hit[:1]])
        samples.spoofed.append((int(fs.through[0]), int(fs.stopped[0])))

    run = spoof_frames(
        {"victim": victim}, frames, spec, distances, (method,), points, steps, category,
        progress, on_case,
    )  # fmt: skip
    samples.cases += len(run.rows)
    samples.failed_attacks += sum(not r.success for r in run.rows)


def genuine_samples(
    victim, frames: SweepFrames, samples: CheckSamples, progress=None, iou: float = 0.5
) -> None:
    """Record the free-space counts of the victim's true detections (BEV IoU at least ``iou``
    with a labelled car or pedestrian) on clean frames."""
    for frame in frames.frames:
        obj = FrameObjective(victim, frame)
        boxes, _, _ = obj.detect(frame.points)
        t = frame.truth
        keep = [i for i, c in enumerate(t.categories) if c in ("car", "pedestrian")]
        if len(boxes) and keep:
            truth = t.boxes_3d[keep]
            best = bev_iou(boxes, truth).max(1).values
            fs = free_space(frame.points, boxes)
            for i in (best >= iou).nonzero().flatten().tolist():
                samples.genuine.append((int(fs.through[i]), int(fs.stopped[i])))
        if progress:
            progress(1)
