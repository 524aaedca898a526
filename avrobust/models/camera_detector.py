"""The camera object detector: cars, pedestrians and traffic signs, in the CenterNet style
(Zhou et al. 2019, "Objects as Points").

Why this design rather than torchvision's Faster R-CNN or FCOS: the shipped recipe has to train
from scratch on two CPU cores within the hour, and traffic signs are about 6 px tall at 40 m.
An anchor-free centre-heatmap head on a single stride-4 feature map, fed by a small residual
backbone with a top-down pathway (an FPN folded into one output level), is a tenth of the
compute of a torchvision two-stage detector at this resolution, needs no anchor tuning for
objects from 5 px to 400 px, and keeps a 6 px sign on one and a half output cells.
torchvision provides the NMS that removes duplicates after the peak extraction.

Input: ``[B, 3, H, W]`` RGB in [0, 1], any size (padded internally to a multiple of 32).
Raw output (:meth:`CameraDetector.forward`): per stride-4 cell, a logit per class for "an object
centre is here", the log of the box width and height in pixels, and the centre's sub-cell offset.
The heatmap logits are what attacks differentiate (a hiding attack lowers them, an appearing
attack raises them); :meth:`CameraDetector.detect` decodes boxes, scores and labels the way
torchvision's detectors return them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms

from avrobust.core.classes import DETECTION_CLASSES
from avrobust.models.blocks import Residual, conv_bn_relu

STRIDE = 4
PAD_TO = 32


class CameraDetector(nn.Module):
    """Backbone strides 2-32 (16, 32, 64, 128, 160 channels), top-down merge to stride 4
    (``width`` channels), and three 1x1 heads on a shared 3x3 layer."""

    def __init__(self, classes: tuple[str, ...] = DETECTION_CLASSES, width: int = 48) -> None:
        super().__init__()
        self.classes = tuple(classes)
        self.s2 = conv_bn_relu(3, 16, 2)
        self.s4 = nn.Sequential(conv_bn_relu(16, 32, 2), conv_bn_relu(32, 32))
        self.s8 = nn.Sequential(conv_bn_relu(32, 64, 2), Residual(64))
        self.s16 = nn.Sequential(conv_bn_relu(64, 128, 2), Residual(128))
        self.s32 = nn.Sequential(conv_bn_relu(128, 160, 2), Residual(160))
        self.lat32 = nn.Conv2d(160, 96, 1)
        self.lat16 = nn.Conv2d(128, 96, 1)
        self.smooth16 = conv_bn_relu(96, 96)
        self.lat8 = nn.Conv2d(64, 96, 1)
        self.smooth8 = conv_bn_relu(96, 64)
        self.lat4 = nn.Conv2d(32, 64, 1)
        self.smooth4 = conv_bn_relu(64, width)
        self.shared = conv_bn_relu(width, 64)
        self.heatmap = nn.Conv2d(64, len(self.classes), 1)
        self.size = nn.Conv2d(64, 2, 1)
        self.offset = nn.Conv2d(64, 2, 1)
        # Focal-loss prior (RetinaNet): start every cell at p = 0.01 so training is stable.
        nn.init.constant_(self.heatmap.bias, -4.6)
        nn.init.zeros_(self.size.weight)
        nn.init.constant_(self.size.bias, 2.5)  # e^2.5 = 12 px, a typical box
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``[B, 3, H, W]`` in [0, 1] to ``heatmap`` logits ``[B, C, H/4, W/4]``, ``size``
        (log pixels, ``[B, 2, H/4, W/4]``: width, height) and ``offset`` (cells, x then y).
        Sizes are of the padded input; :meth:`detect` crops back."""
        h, w = images.shape[-2:]
        ph, pw = (-h) % PAD_TO, (-w) % PAD_TO
        x = (images - self.mean) / self.std
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        c4 = self.s4(self.s2(x))
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p = self.lat32(c32)
        p = self.smooth16(self.lat16(c16) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.smooth8(self.lat8(c8) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        p = self.smooth4(self.lat4(c4) + F.interpolate(p, scale_factor=2.0, mode="nearest"))
        f = self.shared(p)
        oh, ow = -(-h // STRIDE), -(-w // STRIDE)
        return {
            "heatmap": self.heatmap(f)[..., :oh, :ow],
            "size": self.size(f)[..., :oh, :ow],
            "offset": self.offset(f)[..., :oh, :ow],
        }

    @torch.no_grad()
    def detect(
        self,
        images: torch.Tensor | list[torch.Tensor],
        score_threshold: float = 0.05,
        top_k: int = 100,
        nms_iou: float = 0.6,
    ) -> list[dict[str, torch.Tensor]]:
        """torchvision-style predictions: per image ``boxes`` (xyxy pixels), ``scores`` and
        ``labels`` (indices into :attr:`classes`)."""
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        h, w = images.shape[-2:]
        return decode(self(images), (h, w), score_threshold, top_k, nms_iou)


def decode(
    out: dict[str, torch.Tensor],
    image_size: tuple[int, int],
    score_threshold: float = 0.05,
    top_k: int = 100,
    nms_iou: float = 0.6,
) -> list[dict[str, torch.Tensor]]:
    """Peaks of the heatmap (3x3 max pooling), their boxes, then class-wise NMS."""
    heat = out["heatmap"].sigmoid()
    b, c, fh, fw = heat.shape
    peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
    scores, idx = peaks.reshape(b, -1).topk(min(top_k, c * fh * fw))
    labels = idx // (fh * fw)
    cell = idx % (fh * fw)
    cy, cx = (cell // fw).float(), (cell % fw).float()
    h, w = image_size
    results = []
    for i in range(b):
        off = out["offset"][i].reshape(2, -1)[:, cell[i]]
        size = out["size"][i].reshape(2, -1)[:, cell[i]].clamp(-2.0, 7.0).exp()
        x = (cx[i] + off[0]) * STRIDE
        y = (cy[i] + off[1]) * STRIDE
        # Clamped out of place: attacks differentiate through the boxes.
        boxes = torch.stack(
            [
                (x - size[0] / 2).clamp(0, w),
                (y - size[1] / 2).clamp(0, h),
                (x + size[0] / 2).clamp(0, w),
                (y + size[1] / 2).clamp(0, h),
            ],
            1,
        )
        keep = scores[i] >= score_threshold
        bx, sc, lb = boxes[keep], scores[i][keep], labels[i][keep]
        keep = batched_nms(bx, sc, lb, nms_iou)
        results.append({"boxes": bx[keep], "scores": sc[keep], "labels": lb[keep]})
    return results


class TorchvisionStyle(nn.Module):
    """The detector behind torchvision's detection interface (a list of ``[3, H, W]`` images
    in, one ``{"boxes", "scores", "labels"}`` dict per image out), as
    :class:`~avrobust.models.detector_adapter.DetectorAdapter` expects."""

    def __init__(self, detector: CameraDetector, score_threshold: float = 0.05) -> None:
        super().__init__()
        self.detector = detector
        self.classes = detector.classes
        self.score_threshold = score_threshold

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return self.detector.detect(images, self.score_threshold)


def load_camera_detector(path) -> CameraDetector:
    """The detector from an avrobust weights file (``kind: camera-detector``)."""
    from avrobust.core.errors import ModelError
    from avrobust.models.weights import load_weights

    state, meta = load_weights(path, "camera-detector")
    model = CameraDetector(tuple(meta["classes"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"weights do not fit the camera detector ({exc})".splitlines()[0], file=path
        ) from None
    return model.eval()
