"""Clean versus attacked detection quality over whole frames (every labelled object, not only
the targets): mAP at IoU 0.5 for camera detectors (torchmetrics' COCO evaluation) and BEV AP40
at IoU 0.5 for 3D detectors (the KITTI-style evaluation of ``models.box3d_metrics``).

Scored objects lie within ``MAX_RANGE`` metres and are seen well enough (2D: at least half
visible and ``MIN_HEIGHT`` pixels tall; 3D: at least ``MIN_POINTS`` LiDAR returns); the others
are don't-care regions, so detecting them neither helps nor hurts.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from avrobust.report.run_data import JobInfo, RunData

MAX_RANGE = 40.0
MIN_HEIGHT = 5.0
MIN_POINTS = 5


def _scored(truth: dict, kind: str) -> list[bool]:
    out = []
    for i, d in enumerate(truth["distance"]):
        if kind == "2d":
            _, y1, _, y2 = truth["boxes"][i]
            ok = truth["visible_fraction"][i] >= 0.5 and (y2 - y1) >= MIN_HEIGHT
        else:
            ok = truth["num_points"][i] >= MIN_POINTS
        out.append(d <= MAX_RANGE and ok)
    return out


def _map_2d(frames: list[tuple[dict, dict]]) -> float | None:
    from torchmetrics.detection import MeanAveragePrecision

    classes = sorted({c for t, _ in frames for c in t["categories"]})
    if not classes:
        return None
    index = {c: i for i, c in enumerate(classes)}
    metric = MeanAveragePrecision(iou_thresholds=[0.5], box_format="xyxy", class_metrics=False)
    preds, targets = [], []
    for truth, pred in frames:
        keep = [i for i, lab in enumerate(pred["labels"]) if lab in index]
        preds.append(
            {
                "boxes": torch.tensor([pred["boxes"][i] for i in keep]).reshape(-1, 4),
                "scores": torch.tensor([pred["scores"][i] for i in keep]),
                "labels": torch.tensor([index[pred["labels"][i]] for i in keep], dtype=torch.int64),
            }
        )
        targets.append(
            {
                "boxes": torch.tensor(truth["boxes"]).reshape(-1, 4),
                "labels": torch.tensor([index[c] for c in truth["categories"]], dtype=torch.int64),
                "iscrowd": torch.tensor([not s for s in _scored(truth, "2d")], dtype=torch.int64),
            }
        )
    metric.update(preds, targets)
    value = float(metric.compute()["map"])
    return None if value < 0 else value  # torchmetrics says -1 when nothing was scored


def _map_3d(frames: list[tuple[dict, dict]]) -> float | None:
    from avrobust.core.boxes import Box3D
    from avrobust.models.box3d_metrics import FrameBoxes, average_precision_40

    classes = sorted({c for t, _ in frames for c in t["categories"]})
    aps = []
    for cls in classes:
        per_frame = []
        for truth, pred in frames:
            ti = [i for i, c in enumerate(truth["categories"]) if c == cls]
            pi = [i for i, c in enumerate(pred["labels"]) if c == cls]
            scored = _scored(truth, "3d")
            per_frame.append(
                FrameBoxes(
                    Box3D.from_tensor(torch.tensor([truth["boxes"][i] for i in ti]).reshape(-1, 7)),
                    torch.tensor([scored[i] for i in ti], dtype=torch.bool),
                    Box3D.from_tensor(torch.tensor([pred["boxes"][i] for i in pi]).reshape(-1, 7)),
                    torch.tensor([pred["scores"][i] for i in pi]),
                )
            )
        ap, _ = average_precision_40(per_frame, 0.5, "bev")
        if ap is not None:
            aps.append(ap)
    return sum(aps) / len(aps) if aps else None


def map_by_job_group(data: RunData) -> dict[tuple[str, str, str], tuple[float | None, int, str]]:
    """``(model, attack, defence) -> (mAP, frames, kind)`` over the run's recorded detections."""
    grouped: dict[tuple[str, str, str], list] = defaultdict(list)
    kinds: dict[tuple[str, str, str], str] = {}
    for job, _frame, kind, truth, pred in data.detections:
        key = _key(job)
        grouped[key].append((truth, pred))
        kinds[key] = kind
    out = {}
    for key, frames in grouped.items():
        value = _map_2d(frames) if kinds[key] == "2d" else _map_3d(frames)
        out[key] = (value, len(frames), kinds[key])
    return out


def _key(job: JobInfo) -> tuple[str, str, str]:
    return (job.model, job.attack, job.defence)
