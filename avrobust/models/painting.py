"""PointPainting (Vora et al. 2020): every LiDAR point is painted with the camera network's
class scores at the pixel it projects to, before the LiDAR detector runs.

The camera network here is a detector, not a segmenter, so its per-pixel class scores are its
detections rasterised: a pixel's score for a class is the highest score of the detections of
that class whose box covers the pixel's centre (zero where none does). Any network that yields
a ``[C, H, W]`` score map (a user's segmentation model) paints the same way. Each painted point
carries ``C`` scores and a flag that says whether the camera saw it at all, so that "no paint"
(outside the image, behind the camera) is not mistaken for "the camera saw nothing here".

Scores stay differentiable in the detections' scores, which are differentiable in the image:
a camera patch against the painting detector sends its gradient through here.
"""

from __future__ import annotations

import math

import torch

from avrobust.core.calibration import Calibration

#: The classes the shipped painting detector paints with (its LiDAR classes).
PAINT_CLASSES = ("car", "pedestrian")


def score_map(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    detector_classes: tuple[str, ...],
    paint_classes: tuple[str, ...],
    size: tuple[int, int],
) -> torch.Tensor:
    """``[len(paint_classes), H, W]`` per-pixel class scores of 2D detections (``boxes`` xyxy
    pixels, ``scores``, ``labels`` indexing ``detector_classes``) for an image of ``size``
    ``(H, W)``; a detection covers pixel ``(u, v)`` when its box contains ``(u + 0.5, v + 0.5)``."""
    h, w = size
    out = scores.new_zeros(len(paint_classes), h, w)
    boxes = boxes.detach()  # where a box lies is not differentiated, only its score
    for k in range(len(boxes)):
        name = detector_classes[int(labels[k])]
        if name not in paint_classes:
            continue
        c = paint_classes.index(name)
        x0, y0, x1, y1 = (float(v) for v in boxes[k])
        u0, u1 = max(0, math.ceil(x0 - 0.5)), min(w, math.ceil(x1 - 0.5))
        v0, v1 = max(0, math.ceil(y0 - 0.5)), min(h, math.ceil(y1 - 0.5))
        if u1 <= u0 or v1 <= v0:
            continue
        # The clone keeps what maximum's backward saves safe from later writes to ``out``.
        region = out[c, v0:v1, u0:u1].clone()
        out[c, v0:v1, u0:u1] = torch.maximum(region, scores[k])
    return out


def paint(points: torch.Tensor, calibration: Calibration, scores: torch.Tensor) -> torch.Tensor:
    """``[N, 4 + C + 1]``: each point of ``points`` (``[N, 4]``, LiDAR frame) with the ``C``
    class scores of the pixel of ``scores`` (``[C, H, W]``) it projects to, and 1 when it
    projects into the image in front of the camera (zeros otherwise)."""
    h, w = scores.shape[-2:]
    k = calibration.intrinsics
    if (h, w) != (k.height, k.width):
        raise ValueError(f"score map is {h}x{w} but the camera is {k.height}x{k.width}")
    uv, _, visible = calibration.project_lidar(points[:, :3].double())
    u = uv[:, 0].floor().long().clamp(0, w - 1)
    v = uv[:, 1].floor().long().clamp(0, h - 1)
    vis = visible.to(points.dtype)
    painted = scores[:, v, u].T.to(points.dtype) * vis[:, None]
    return torch.cat([points[:, :4], painted, vis[:, None]], dim=1)


def drop_detections(
    dets: dict[str, torch.Tensor], gen: torch.Generator, p_each: float, p_all: float
) -> dict[str, torch.Tensor]:
    """Training-time dropout of camera detections: all of them with probability ``p_all`` (a
    blinded camera), otherwise each with probability ``p_each``. The camera detector has seen
    the LiDAR detector's training images, so its detections there are cleaner than on new
    data; dropping some keeps the painted detector from trusting the paint more than it
    should, and keeps it working when the camera fails (fog, glare, a patch)."""
    n = len(dets["scores"])
    if float(torch.rand((), generator=gen)) < p_all:
        keep = torch.zeros(n, dtype=torch.bool)
    else:
        keep = torch.rand(n, generator=gen) >= p_each
    return {k: v[keep] for k, v in dets.items()}


class Painter:
    """Paints the sweeps of a :class:`~avrobust.models.lidar_data.LidarSample` set with cached
    camera detections (``boxes``, ``scores``, ``labels`` indexing ``detector_classes``)."""

    def __init__(
        self, detector_classes: tuple[str, ...], paint_classes: tuple[str, ...] = PAINT_CLASSES
    ) -> None:
        self.detector_classes = tuple(detector_classes)
        self.paint_classes = tuple(paint_classes)
        self.channels = len(self.paint_classes) + 1

    def __call__(
        self,
        sample,
        dets: dict[str, torch.Tensor],
        gen: torch.Generator | None = None,
        p_each: float = 0.0,
        p_all: float = 0.0,
    ):
        """The sample with painted points (detections dropped at random when ``gen`` is given)."""
        from dataclasses import replace

        if sample.calibration is None:
            raise ValueError(f"sweep {sample.name} has no calibration to project with")
        if gen is not None:
            dets = drop_detections(dets, gen, p_each, p_all)
        k = sample.calibration.intrinsics
        scores = score_map(
            dets["boxes"],
            dets["scores"],
            dets["labels"],
            self.detector_classes,
            self.paint_classes,
            (k.height, k.width),
        )
        return replace(sample, points=paint(sample.points, sample.calibration, scores))
