"""3D detectors behind one small adapter: anything that maps a LiDAR sweep (``[N, 4]`` x, y, z,
intensity in the LiDAR frame: x forward, y left, z up, metres) and the frame's calibration to
boxes, scores and labels becomes a model that returns 3D
:class:`~avrobust.core.detections.Detections`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.detections import Detections
from avrobust.core.errors import ModelError
from avrobust.core.frame import Frame
from avrobust.core.thresholds import DETECTION_SCORE

#: What a user's 3D detector returns for one sweep: ``[K, 7]`` boxes ``(x, y, z, l, w, h,
#: yaw)`` (box centres, LiDAR frame), ``[K]`` scores and ``[K]`` int64 labels.
Output3D = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class LidarDetectorAdapter:
    """Wraps ``fn(points, calibration) -> (boxes, scores, labels)``.

    Args:
        fn: the detector (an ``nn.Module`` or any callable).
        classes: name of each label index.
        score_threshold: detections below it are dropped.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor, Calibration | None], Output3D],
        classes: tuple[str, ...],
        score_threshold: float = DETECTION_SCORE,
    ) -> None:
        self.fn = fn
        self.classes = tuple(classes)
        self.score_threshold = score_threshold

    def detect(self, points: torch.Tensor, calibration: Calibration | None = None) -> Detections:
        if points.dim() != 2 or points.shape[1] < 3:
            raise ModelError(
                f"points must be [N, 4] (x, y, z, intensity), got {tuple(points.shape)}"
            )
        with torch.no_grad():
            out = self.fn(points, calibration)
        try:
            boxes, scores, labels = out
        except (TypeError, ValueError):
            raise ModelError("a 3D detector must return (boxes, scores, labels)") from None
        if isinstance(boxes, Box3D):
            boxes = boxes.as_tensor()
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.dim() != 2 or boxes.shape[1] != 7:
            raise ModelError(
                f"boxes must be [K, 7] (x, y, z, l, w, h, yaw), got {tuple(boxes.shape)}"
            )
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.numel() and int(labels.max()) >= len(self.classes):
            raise ModelError(
                f"the detector emitted label {int(labels.max())} but only "
                f"{len(self.classes)} class names were given"
            )
        scores = torch.as_tensor(scores, dtype=torch.float32)
        keep = scores >= self.score_threshold
        return Detections(boxes[keep], scores[keep], labels[keep], "3d", self.classes)

    def __call__(self, frame: Frame) -> Detections:
        if frame.points is None:
            raise ModelError("this detector needs a LiDAR sweep")
        return self.detect(frame.points, frame.calibration)


class _Ours(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model.eval()
        self.classes = model.classes

    def forward(self, points: torch.Tensor, calibration=None) -> Output3D:
        ((boxes, scores, labels),) = self.model.detect([points.float()], score_threshold=0.05)
        return boxes.as_tensor(), scores, labels


def load_lidar_detector(
    spec: str | Path | nn.Module | Callable,
    classes: tuple[str, ...] | None = None,
    score_threshold: float = DETECTION_SCORE,
) -> LidarDetectorAdapter:
    """A 3D detector from a callable or module, ``package.module:callable`` (returning one),
    or an avrobust weights file (``kind: lidar-detector``), which carries its class names."""
    if isinstance(spec, str) and ":" in spec and not Path(spec).exists():
        mod_name, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(mod_name), attr)()
        except (ImportError, AttributeError) as exc:
            raise ModelError(f"cannot import {spec!r} ({exc})", field="model") from None
    elif isinstance(spec, (str, Path)):
        from avrobust.models.lidar_detector import load_lidar_model

        model = load_lidar_model(spec)
        fn = _Ours(model)
    else:
        fn = spec
    if not callable(fn):
        raise ModelError(f"{spec} is not callable", field="model")
    if isinstance(fn, nn.Module):
        fn.eval()
    classes = classes or tuple(getattr(fn, "classes", ()) or ())
    if not classes:
        raise ModelError(
            "the detector's class names are needed (pass classes=...)", field="classes"
        )
    return LidarDetectorAdapter(fn, tuple(classes), score_threshold)
