"""Pictures of frames for people: the camera image with boxes, a bird's-eye view of the LiDAR
points with 3D boxes, and LiDAR points projected onto the camera image.

All functions return ``[H, W, 3]`` uint8 RGB arrays; ``save_png`` (re-exported from
``core.images``) writes one atomically.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from avrobust.core.boxes import Box2D, Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.images import save_png, to_rgb8

CATEGORY_COLOURS = {
    "car": (60, 200, 255),
    "pedestrian": (255, 170, 40),
    "traffic_sign": (255, 60, 90),
}


def draw_boxes(
    rgb: np.ndarray,
    boxes: Box2D,
    labels: list[str],
    colours: list[tuple[int, int, int]] | None = None,
    thickness: int = 2,
) -> np.ndarray:
    """Boxes with their labels drawn on a copy of ``rgb``."""
    out = rgb.copy()
    for i, (x1, y1, x2, y2) in enumerate(boxes.xyxy.round().int().tolist()):
        if x2 <= x1 or y2 <= y1:
            continue
        colour = (
            colours[i]
            if colours
            else CATEGORY_COLOURS.get(labels[i].split(":")[0], (255, 255, 255))
        )
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        cv2.putText(
            out,
            labels[i],
            (x1, max(12, y1 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            colour,
            1,
            cv2.LINE_AA,
        )
    return out


def lidar_overlay(
    rgb: np.ndarray,
    points: torch.Tensor,
    calibration: Calibration,
    max_depth: float = 60.0,
    radius: int = 2,
) -> np.ndarray:
    """LiDAR points projected onto the image, coloured by depth (near: red, far: blue)."""
    out = rgb.copy()
    uv, depth, visible = calibration.project_lidar(points)
    uv, depth = uv[visible].numpy(), depth[visible].numpy()
    order = np.argsort(-depth)  # far first, so near points stay on top
    shade = np.clip(depth[order] / max_depth, 0, 1)
    colours = cv2.applyColorMap((255 * (1 - shade)).astype(np.uint8)[:, None], cv2.COLORMAP_JET)[
        :, 0, ::-1
    ]
    for (u, v), c in zip(uv[order].astype(int), colours, strict=True):
        cv2.circle(out, (int(u), int(v)), radius, tuple(int(x) for x in c), -1, cv2.LINE_AA)
    return out


def bev_image(
    points: torch.Tensor | None,
    boxes: Box3D | None = None,
    labels: list[str] | None = None,
    x_range: tuple[float, float] = (-10.0, 70.0),
    y_range: tuple[float, float] = (-40.0, 40.0),
    resolution: float = 0.1,
    pred_boxes: Box3D | None = None,
) -> np.ndarray:
    """A bird's-eye view in the LiDAR frame: x up the image, y to the left, as a driver sees
    it. Points are shaded by height; ground-truth boxes are drawn in their class colours with a
    line towards their front, predicted boxes in white."""
    h = round((x_range[1] - x_range[0]) / resolution)
    w = round((y_range[1] - y_range[0]) / resolution)
    out = np.full((h, w, 3), 18, np.uint8)

    def to_px(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = (y_range[1] - y) / resolution
        row = (x_range[1] - x) / resolution
        return col, row

    # Range rings every 10 m so distances can be read off.
    c0, r0 = to_px(np.array([0.0]), np.array([0.0]))
    for ring in range(10, int(max(abs(v) for v in (*x_range, *y_range))) + 10, 10):
        cv2.circle(
            out, (int(c0[0]), int(r0[0])), round(ring / resolution), (45, 45, 45), 1, cv2.LINE_AA
        )
    if points is not None and points.shape[0]:
        p = points.detach().cpu().numpy()
        col, row = to_px(p[:, 0], p[:, 1])
        ok = (col >= 0) & (col < w - 1) & (row >= 0) & (row < h - 1)
        # Height above the road (the LiDAR sits about 1.9 m up): ground grey, objects bright.
        z = np.clip((p[ok, 2] + 2.0) / 4.0, 0, 1)
        colours = cv2.applyColorMap((40 + 215 * z).astype(np.uint8)[:, None], cv2.COLORMAP_TURBO)[
            :, 0, ::-1
        ]
        rr, cc = row[ok].astype(int), col[ok].astype(int)
        for dr in (0, 1):  # 2x2 dots so a sparse sweep is still readable
            for dc in (0, 1):
                out[rr + dr, cc + dc] = colours
    cv2.drawMarker(out, (int(c0[0]), int(r0[0])), (255, 255, 255), cv2.MARKER_TRIANGLE_UP, 14, 2)

    def draw(b: Box3D, colour_of) -> None:
        corners = b.corners()[:, :4, :2].detach().cpu().numpy()
        centres = b.center.detach().cpu().numpy()
        for i in range(len(b)):
            col, row = to_px(corners[i, :, 0], corners[i, :, 1])
            poly = np.stack([col, row], 1).round().astype(np.int32)
            colour = colour_of(i)
            cv2.polylines(out, [poly], True, colour, 2, cv2.LINE_AA)
            front = (poly[0] + poly[1]) // 2
            cc, rr = to_px(centres[i, 0:1], centres[i, 1:2])
            cv2.line(
                out, (int(cc[0]), int(rr[0])), tuple(int(v) for v in front), colour, 1, cv2.LINE_AA
            )

    if boxes is not None and len(boxes):
        names = labels or ["car"] * len(boxes)
        draw(boxes, lambda i: CATEGORY_COLOURS.get(names[i], (255, 255, 255)))
    if pred_boxes is not None and len(pred_boxes):
        draw(pred_boxes, lambda i: (255, 255, 255))
    return out


__all__ = ["bev_image", "draw_boxes", "lidar_overlay", "save_png", "to_rgb8"]
