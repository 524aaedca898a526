"""Victims a campaign can name (registered in ``avrobust.evaluation.components``)."""

from __future__ import annotations

from pathlib import Path

import torch

from avrobust.core.detections import Detections
from avrobust.core.frame import Frame
from avrobust.models.adapters import ClassifierAdapter, load_classifier
from avrobust.models.weights import ASSETS


def crop_boxes(
    image: torch.Tensor, boxes: torch.Tensor, size: int = 64, margin: float = 0.15
) -> torch.Tensor:
    """``[N, 3, size, size]`` square crops around ``boxes`` (xyxy) with ``margin`` context, the
    same crops the classifier was trained on; differentiable in ``image``."""
    from avrobust.data.crops import square_crop

    if boxes.shape[0] == 0:
        return image.new_zeros(0, 3, size, size)
    return torch.stack([square_crop(image, b, margin, size) for b in boxes])


class SignClassifierOnTruth:
    """The sign classifier applied to every visible traffic sign's ground-truth box: the
    classification victim of RP2-style evaluations (detection assumed perfect). The
    detector-plus-classifier pipeline replaces the ground-truth boxes with detections."""

    name = "sign-classifier"
    categories = ("traffic_sign",)  # targets of other categories get no verdict

    def __init__(self, weights: str | Path | None = None, min_box_px: float = 8.0) -> None:
        path = Path(weights) if weights else ASSETS / "sign_classifier.pt"
        self.classifier: ClassifierAdapter = load_classifier(path)
        self.min_box_px = min_box_px

    def __call__(self, frame: Frame) -> Detections:
        t = frame.truth
        keep = [
            i
            for i, c in enumerate(t.categories)
            if c == "traffic_sign" and float(t.boxes_2d.height[i]) >= self.min_box_px
        ]
        boxes = t.boxes_2d.xyxy[keep]
        if not keep:
            return Detections.empty("2d", self.classifier.classes)
        crops = crop_boxes(frame.image, boxes)
        with torch.no_grad():
            probs = self.classifier(crops).softmax(1)
        scores, labels = probs.max(1)
        return Detections(boxes, scores, labels, "2d", self.classifier.classes)
