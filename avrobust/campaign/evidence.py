"""What a job keeps beyond its per-target rows, so the report can show and recompute its
results from the run directory alone: each frame's detections with the ground truth (for mAP)
and a few example frames with boxes drawn (for reviewers' eyes)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch
from torchvision.ops import box_iou

from avrobust.campaign.records import DetectionRecord, FrameRecord, Picture
from avrobust.core.boxes import Box3D
from avrobust.core.calibration import Calibration
from avrobust.core.detections import Detections
from avrobust.core.frame import Frame, GroundTruth
from avrobust.core.thresholds import MATCH_IOU
from avrobust.scenario.schema import Scenario

# A kept frame: ground truth, calibration, the image as uint8 RGB, the model's detections.
Kept = tuple[GroundTruth, Calibration, np.ndarray, Detections | None]
TARGET_COLOUR = (255, 255, 255)
ON_TARGET, OTHER = (80, 220, 80), (120, 170, 255)
INSET = 200  # pixels: a far sign is a few pixels tall, so the target is also shown enlarged


def _round(t: torch.Tensor, nd: int = 3) -> list:
    if t.dim() > 1:
        return [_round(r, nd) for r in t]
    return [round(v, nd) for v in t.detach().double().cpu().tolist()]


def detection_record(
    job_id: str, frame: Frame, dets: Detections, categories: tuple[str, ...] | None
) -> DetectionRecord:
    """The frame's labelled objects of the model's categories and what the model output."""
    t = frame.truth
    keep = [i for i, c in enumerate(t.categories) if categories is None or c in categories]
    centres = t.boxes_3d.center[keep]
    truth = {
        "categories": [t.categories[i] for i in keep],
        "distance": _round(torch.linalg.vector_norm(centres[:, :2], dim=1), 2),
        "visible_fraction": _round(t.visible_fraction[keep]),
        "num_points": t.num_points[keep].tolist(),
        "boxes": _round(
            t.boxes_3d[keep].as_tensor() if dets.kind == "3d" else t.boxes_2d.xyxy[keep], 3
        ),
    }
    names = dets.class_names
    predicted = {
        "boxes": _round(dets.boxes, 3),
        "scores": _round(dets.scores, 4),
        "labels": [names[i] if i < len(names) else str(i) for i in dets.labels.tolist()],
    }
    return DetectionRecord(job_id, frame.index, dets.kind, json.dumps(truth), json.dumps(predicted))


def pick_frames(scenario: Scenario, rows: list[FrameRecord]) -> dict[str, int]:
    """Which frames to keep as pictures (see :class:`Picture`): the middle of the first
    target's encounter window, and the first frame in it that the model got wrong."""
    if not rows:
        return {}
    target = scenario.targets[0] if scenario.targets else None
    mine = sorted(
        (r for r in rows if target is not None and r.target == target.object),
        key=lambda r: r.frame,
    )
    if not mine:  # no target seen: the middle frame
        frames = sorted({r.frame for r in rows})
        return {"window": frames[len(frames) // 2]}
    enc = target.encounter
    mid = (enc.near + enc.far) / 2
    # Frames where the target is mostly in view: a miss behind a parked car is no evidence.
    inside = [
        r for r in mine if enc.near <= r.distance <= enc.far and r.visible_fraction >= 0.5
    ] or mine
    out = {"window": min(inside, key=lambda r: (abs(r.distance - mid), r.frame)).frame}
    failed = next((r.frame for r in inside if r.correct is False), None)
    if failed is not None and failed != out["window"]:
        out["failure"] = failed
    return out


def draw_example(kept: Kept, targets: dict[str, int]) -> np.ndarray:
    """The camera image with the targets' true boxes (white), the model's detections (green
    when they overlap a target at IoU 0.5 or more, blue otherwise, with label and score), and
    the first target enlarged in the top-left corner."""
    t, calibration, rgb, dets = kept
    out = rgb.copy()
    ids = t.ids.tolist()
    target_boxes = []
    for name, inst in targets.items():
        if inst in ids:
            i = ids.index(inst)
            box = t.boxes_2d.xyxy[i]
            if box[2] > box[0]:
                target_boxes.append(box)
                _box(out, box.tolist(), TARGET_COLOUR, f"target {name}", below=True)
    if dets is not None and len(dets):
        boxes = dets.boxes
        if dets.kind == "3d":
            b2, ok = Box3D.from_tensor(dets.boxes).project(calibration)
            h, w = rgb.shape[:2]
            boxes = b2.clip(w, h).xyxy
            keep = ok & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        else:
            keep = torch.ones(len(dets), dtype=torch.bool)
        names = dets.class_names
        for k in keep.nonzero().flatten().tolist():
            label = names[int(dets.labels[k])] if int(dets.labels[k]) < len(names) else "?"
            on_target = bool(target_boxes) and bool(
                (box_iou(boxes[k : k + 1], torch.stack(target_boxes)) >= MATCH_IOU).any()
            )
            colour = ON_TARGET if on_target else OTHER
            _box(out, boxes[k].tolist(), colour, f"{label} {float(dets.scores[k]):.2f}")
    if target_boxes:
        _inset(out, rgb, target_boxes[0].tolist())
    return out


def _inset(img: np.ndarray, clean: np.ndarray, xyxy: list[float]) -> None:
    """Paste an enlarged square crop of ``clean`` around ``xyxy`` into the corner of ``img``,
    with the target's box outlined thinly so the crop's pixels stay visible."""
    h, w = img.shape[:2]
    cx, cy = (xyxy[0] + xyxy[2]) / 2, (xyxy[1] + xyxy[3]) / 2
    half = max(24.0, 0.9 * max(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]))
    x1, y1 = int(max(0, cx - half)), int(max(0, cy - half))
    x2, y2 = int(min(w, cx + half)), int(min(h, cy + half))
    size = min(INSET, h // 2, w // 2)
    if x2 - x1 < 4 or y2 - y1 < 4 or size < 32 or (x1 < size + 8 and y1 < size + 8):
        return  # too small to help, or the target itself sits in the corner
    crop = cv2.resize(clean[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_NEAREST)
    sx, sy = size / (x2 - x1), size / (y2 - y1)
    b = [(xyxy[0] - x1) * sx, (xyxy[1] - y1) * sy, (xyxy[2] - x1) * sx, (xyxy[3] - y1) * sy]
    cv2.rectangle(crop, (round(b[0]), round(b[1])), (round(b[2]), round(b[3])), TARGET_COLOUR, 1)
    img[4 : 4 + size, 4 : 4 + size] = crop
    cv2.rectangle(img, (3, 3), (5 + size, 5 + size), TARGET_COLOUR, 1)


def _box(img: np.ndarray, xyxy: list[float], colour, label: str, below: bool = False) -> None:
    x1, y1, x2, y2 = (round(v) for v in xyxy)
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2, cv2.LINE_AA)
    y = min(img.shape[0] - 4, y2 + 14) if below else max(12, y1 - 4)
    cv2.putText(img, label, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, label, (x1, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def encode_jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def keep(frame: Frame, dets: Detections | None) -> Kept | None:
    """What drawing a frame later needs (not the whole frame: its point cloud, depth and
    instance maps would hold hundreds of megabytes over an episode)."""
    if frame.image is None:
        return None
    from avrobust.core.images import to_rgb8

    return (frame.truth, frame.calibration, to_rgb8(frame.image), dets)


def pictures(
    scenario: Scenario, rows: list[FrameRecord], kept: dict[int, Kept], targets: dict[str, int]
) -> list[Picture]:
    out = []
    for role, index in pick_frames(scenario, rows).items():
        if index in kept:
            out.append(Picture(index, role, encode_jpeg(draw_example(kept[index], targets))))
    return out
