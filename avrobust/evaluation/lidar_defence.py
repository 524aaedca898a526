"""Measuring a LiDAR-side check against spoofing: what the check says of every spoofed phantom
that fooled the victim (attack success with the check, by threshold) and of the victim's true
detections on clean frames (its false-positive rate, by threshold), so one run gives the whole
ROC curve.

A check is measured through a ``Judge``: ``samples(frame, points, detections)`` gives one
sample per 3D detection (the free-space counts, or the camera support), and
``rejects(sample, threshold)`` the check's rule on it.

The spoofing cases are those of ``evaluation.lidar_attack``: ``spoof`` puts a phantom straight
ahead (random, black-box, white-box, or ``adaptive``: knows the free-space check), ``frustum``
puts it inside the real car's camera frustum at the wrong depth (the attack that knows the
cross-modal check).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from avrobust.attacks.lidar.objective import FrameObjective
from avrobust.core.detections import Detections
from avrobust.core.sensors import LidarSpec
from avrobust.core.thresholds import MATCH_IOU, PHANTOM_RADIUS_M
from avrobust.defences.free_space import DEFAULT_MIN_RAYS, free_space, rejects
from avrobust.evaluation.lidar_attack import frustum_frames, spoof_frames
from avrobust.evaluation.viewpoints import SweepFrames
from avrobust.models.box3d_metrics import bev_iou


@dataclass
class Judge:
    """A check as the measurement sees it (see the module's docstring)."""

    name: str
    samples: Callable[[Any, torch.Tensor, Detections], list]
    rejects: Callable[[Any, float], bool]


def free_space_judge(min_rays: int = DEFAULT_MIN_RAYS) -> Judge:
    def samples(frame, points, dets: Detections) -> list:
        fs = free_space(points, dets.box3d())
        return list(zip(fs.through.tolist(), fs.stopped.tolist(), strict=True))

    return Judge("free-space-check", samples, lambda s, th: bool(rejects(s[0], s[1], th, min_rays)))


def cross_modal_judge(**params) -> Judge:
    from avrobust.defences.cross_modal import CrossModalCheck

    check = CrossModalCheck(**params)
    return Judge(
        "cross-modal-check",
        lambda frame, points, dets: check.camera_support(frame, dets),
        lambda s, th: s is not None and s < th,
    )


@dataclass
class CheckSamples:
    """Samples of spoofed phantoms that fooled the victim, of the victim's true detections on
    clean frames, and how many spoofing cases were tried."""

    judge: Judge
    spoofed: list = field(default_factory=list)
    genuine: list = field(default_factory=list)
    cases: int = 0
    failed_attacks: int = 0

    def point(self, threshold: float) -> dict:
        """Attack success without and with the check, and the check's false-positive rate."""
        rejects = self.judge.rejects
        passed = sum(not rejects(s, threshold) for s in self.spoofed)
        fp = sum(rejects(s, threshold) for s in self.genuine)
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
    attack: str = "spoof",
) -> None:
    """Spoof phantoms in every frame (``spoof``: straight ahead at each of ``distances``;
    ``frustum``: inside the real car's camera frustum, each of ``distances`` metres off its
    range, negative: nearer) and record the check's sample of every phantom the victim
    reports."""

    def on_case(res, found, cls, x, y, ok, frame) -> None:
        if not ok:
            return
        dets = as_detections(found, victim.classes)
        near = torch.hypot(dets.boxes[:, 0] - x, dets.boxes[:, 1] - y) <= PHANTOM_RADIUS_M
        hit = (near & (dets.labels == cls)).nonzero().flatten()
        phantom = dets.filter(hit[:1])
        samples.spoofed.append(samples.judge.samples(frame, res.sweep.points, phantom)[0])

    run_cases = spoof_frames if attack == "spoof" else frustum_frames
    run = run_cases(
        {"victim": victim}, frames, spec, distances, (method,), points, steps, category,
        progress, on_case,
    )  # fmt: skip
    samples.cases += len(run.rows)
    samples.failed_attacks += sum(not r.success for r in run.rows)


def as_detections(found: tuple, classes: tuple[str, ...]) -> Detections:
    """A victim's raw ``(Box3D, scores, labels)`` as the Detections a defence sees."""
    boxes, scores, labels = found
    return Detections(boxes.as_tensor().detach(), scores.detach(), labels, "3d", classes)


def genuine_samples(
    victim, frames: SweepFrames, samples: CheckSamples, progress=None, iou: float = MATCH_IOU
) -> None:
    """Record the check's samples of the victim's true detections (BEV IoU at least ``iou``
    with a labelled car or pedestrian) on clean frames."""
    for frame in frames.frames:
        dets = as_detections(FrameObjective(victim, frame).detect(frame.points), victim.classes)
        t = frame.truth
        keep = [i for i, c in enumerate(t.categories) if c in ("car", "pedestrian")]
        if len(dets) and keep:
            best = bev_iou(dets.box3d(), t.boxes_3d[keep]).max(1).values
            true = dets.filter(best >= iou)
            if len(true):
                samples.genuine += samples.judge.samples(frame, frame.points, true)
        if progress:
            progress(1)
