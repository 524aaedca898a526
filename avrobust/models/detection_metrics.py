"""Detection metrics through torchmetrics' ``MeanAveragePrecision`` (COCO protocol, pycocotools
backend): AP at IoU 0.5 per class, within a range, by condition group and by distance band.

Which objects count: a labelled object is *evaluated* when it lies in the range or band asked
for, is at most partly occluded (KITTI level 0 or 1: more than half visible), at most half
truncated and at least ``min_height`` pixels tall. Every other labelled object is passed as a
COCO crowd region, so a detection of it is neither a true nor a false positive (KITTI's
"don't care" rule); only detections of nothing count against the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from avrobust.core.weather import CONDITION_GROUPS, condition_group
from avrobust.models.detection_data import DetectionSet, DetectionTargets

BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, 60.0))


def evaluated_mask(
    t: DetectionTargets, max_distance: float, min_distance: float = 0.0, min_height: float = 5.0
) -> torch.Tensor:
    """Which of an image's labelled objects are scored (see the module notes)."""
    h = t.boxes[:, 3] - t.boxes[:, 1]
    return (
        (t.distance >= min_distance)
        & (t.distance < max_distance)
        & (t.occluded <= 1)
        & (t.truncated <= 0.5)
        & (h >= min_height)
    )


def average_precision(
    predictions: list[dict[str, torch.Tensor]],
    targets: list[DetectionTargets],
    classes: tuple[str, ...],
    max_distance: float = 40.0,
    min_distance: float = 0.0,
    min_height: float = 5.0,
) -> dict:
    """AP@0.5 per class (``None`` where the class has no evaluated object), their mean over
    the classes present, and the evaluated object count per class."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(
        iou_thresholds=[0.5],
        class_metrics=True,
        backend="pycocotools",
        max_detection_thresholds=[1, 10, 100],
    )
    tm_targets = []
    counts = torch.zeros(len(classes), dtype=torch.long)
    for t in targets:
        keep = evaluated_mask(t, max_distance, min_distance, min_height)
        counts += torch.bincount(t.labels[keep], minlength=len(classes))
        tm_targets.append({"boxes": t.boxes, "labels": t.labels, "iscrowd": (~keep).long()})
    preds = [
        {
            "boxes": p["boxes"].float().cpu(),
            "scores": p["scores"].float().cpu(),
            "labels": p["labels"].cpu(),
        }
        for p in predictions
    ]
    metric.update(preds, tm_targets)
    result = metric.compute()
    per_class: dict[str, float | None] = {c: None for c in classes}
    ids = result["classes"].reshape(-1).tolist()
    aps = result["map_per_class"].reshape(-1).tolist()
    for i, ap in zip(ids, aps, strict=True):
        if counts[i] > 0 and ap >= 0:
            per_class[classes[i]] = round(float(ap), 4)
    present = [v for v in per_class.values() if v is not None]
    return {
        "ap50": per_class,
        "map50": round(sum(present) / len(present), 4) if present else None,
        "objects": {c: int(n) for c, n in zip(classes, counts.tolist(), strict=True)},
        "images": len(targets),
    }


def predict(
    detector: Callable[[torch.Tensor], list[dict[str, torch.Tensor]]],
    data: DetectionSet,
    batch: int = 8,
    device: torch.device | str = "cpu",
) -> list[dict[str, torch.Tensor]]:
    """The detector's predictions for every image of ``data`` (``[B, 3, H, W]`` in [0, 1] in,
    torchvision-style dicts out)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(data), batch):
            x = data.images[i : i + batch].to(device).float() / 255.0
            out += [{k: v.cpu() for k, v in p.items()} for p in detector(x)]
    return out


def detection_report(
    predictions: list[dict[str, torch.Tensor]], data: DetectionSet, max_distance: float = 40.0
) -> dict:
    """The model card's numbers: clear weather within ``max_distance`` (the headline), each
    condition group within it, and clear weather by distance band."""
    groups = [condition_group(w) if w else "clear" for w in data.weather]

    def select(group: str) -> tuple[list, list]:
        idx = [i for i, g in enumerate(groups) if g == group]
        return [predictions[i] for i in idx], [data.targets[i] for i in idx]

    report: dict = {"max_distance": max_distance, "by_condition": {}, "clear_by_distance": {}}
    for g in CONDITION_GROUPS:
        p, t = select(g)
        if t:
            report["by_condition"][g] = average_precision(p, t, data.classes, max_distance)
    report["clear"] = report["by_condition"].get("clear")
    p, t = select("clear")
    if t:
        for lo, hi in BANDS:
            report["clear_by_distance"][f"{lo:g}-{hi:g} m"] = average_precision(
                p, t, data.classes, max_distance=hi, min_distance=lo
            )
    return report
