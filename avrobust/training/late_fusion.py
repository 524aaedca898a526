"""Fitting the late-fusion head (CLOCs-style) to a camera and a LiDAR detector.

The head learns which 3D detections are true from the pairing of both detectors' outputs, so
it must be fitted on data that neither detector was trained on: their scores on their own
training frames are better than anywhere else, and a head fitted there would trust them too
much. Build a separate split for it (``avrobust dataset build --seed 300 --lidar``).

A 3D detection is positive when its bird's-eye-view IoU with a labelled object of its class
reaches the KITTI threshold (0.7 cars, 0.5 pedestrians); detections the camera cannot see are
left out (their score stays the LiDAR's). Full-batch AdamW with binary cross-entropy over all
visible detections of the split: a few thousand parameters, seconds on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from avrobust.core.files import atomic_write
from avrobust.models.box3d_metrics import bev_iou
from avrobust.models.camera_detector import load_camera_detector
from avrobust.models.fusion_data import camera_detections
from avrobust.models.late_fusion import FusionHead, pair_features
from avrobust.models.lidar_data import LidarSample, load_lidar_set
from avrobust.models.lidar_detector import load_lidar_model
from avrobust.models.lidar_metrics import IOU, lidar_report
from avrobust.models.weights import ASSETS, base_record, save_weights
from avrobust.training.lidar import predict_lidar


@dataclass
class LateFusionConfig:
    """Attributes: data (a split neither base detector trained on), out, val (held-out split
    for the report), camera and lidar (base weights), steps, lr, seed, limit (first N
    sweeps of ``data``)."""

    data: str
    out: str
    val: str | None = None
    camera: str = str(ASSETS / "camera_detector.pt")
    lidar: str = str(ASSETS / "lidar_detector.pt")
    steps: int = 600
    lr: float = 3e-3
    seed: int = 0
    limit: int | None = None


@dataclass
class FusionInputs:
    """Both detectors' outputs on a split, paired: per sweep the LiDAR predictions, the pair
    features, owners and visibility."""

    samples: list[LidarSample]
    preds: list[tuple]
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def fusion_inputs(
    folder: str,
    camera: str,
    lidar: str,
    limit: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FusionInputs:
    lidar_model = load_lidar_model(lidar)
    cam_classes = load_camera_detector(camera).classes
    samples = load_lidar_set(folder, lidar_model.classes, lidar_model.grid, limit)
    n = len(samples)

    def tick(done: int, _total: int) -> None:  # camera first, then LiDAR: 2n in all
        if on_step:
            on_step(done, 2 * n)

    dets = camera_detections(folder, camera, [s.name for s in samples], on_step=tick)
    preds = []
    for i in range(0, n, 50):
        preds += predict_lidar(lidar_model, samples[i : i + 50], "cpu", score_threshold=0.05)
        tick(n + min(i + 50, n), 2 * n)
    pairs = [
        pair_features(b, s, lab, lidar_model.classes, d, cam_classes, smp.calibration)
        for (b, s, lab), d, smp in zip(preds, dets, samples, strict=True)
    ]
    return FusionInputs(samples, preds, pairs)


def true_positive(pred: tuple, sample: LidarSample, classes: tuple[str, ...]) -> torch.Tensor:
    """Whether each 3D detection overlaps a labelled object of its class at the KITTI IoU."""
    boxes, _, labels = pred
    tp = torch.zeros(len(boxes), dtype=torch.bool)
    if len(boxes) == 0 or len(sample.boxes) == 0:
        return tp
    iou = bev_iou(boxes, sample.boxes)
    same = labels[:, None] == sample.labels[None, :]
    thr = torch.tensor([IOU.get(classes[int(c)], 0.5) for c in labels])
    return ((iou * same) >= thr[:, None]).any(1)


def fused_predictions(head: FusionHead, inputs: FusionInputs) -> list[tuple]:
    out = []
    with torch.no_grad():
        for (boxes, scores, labels), (f, o, v) in zip(inputs.preds, inputs.pairs, strict=True):
            out.append((boxes, head.fuse(scores, f, o, v), labels))
    return out


def train_late_fusion(
    cfg: LateFusionConfig,
    on_step: Callable[[int, int, float], None] | None = None,
    on_prepare: Callable[[str], Callable[[int, int], None]] | None = None,
) -> dict:
    """Fit the head; writes ``out/fusion_late.pt`` and ``out/metrics.json``; returns the
    metrics (with ``val``: the LiDAR detector's and the fusion's reports side by side).
    ``on_prepare(label)`` gives a ``(done, total)`` callback per preparation stage."""

    def stage(label: str):
        return on_prepare(label) if on_prepare else None

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    classes = load_lidar_model(cfg.lidar).classes
    fit = fusion_inputs(cfg.data, cfg.camera, cfg.lidar, cfg.limit, stage("fit split"))
    feats, owners, targets, offset = [], [], [], 0
    for pred, (f, o, v), s in zip(fit.preds, fit.pairs, fit.samples, strict=True):
        # Only detections the camera sees, inside the labelled wedge, teach the head.
        seen = v & s.in_fov(pred[0].center[:, :2]) if len(pred[0]) else v
        keep = seen[o]
        idx = torch.cumsum(seen.long(), 0) - 1  # detection -> row among the seen ones
        feats.append(f[keep])
        owners.append(idx[o[keep]] + offset)
        targets.append(true_positive(pred, s, classes)[seen].float())
        offset += int(seen.sum())
    x, owner, y = torch.cat(feats), torch.cat(owners), torch.cat(targets)
    head = FusionHead()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    history = []
    for step in range(cfg.steps):
        loss = loss_fn(head(x, owner, len(y)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step:
            on_step(step + 1, cfg.steps, float(loss.detach()))
        if (step + 1) % 100 == 0 or step == 0:
            history.append({"step": step + 1, "loss": float(loss.detach())})
    metrics: dict = {
        "config": asdict(cfg),
        "history": history,
        "fit_sweeps": len(fit.samples),
        "fit_detections": len(y),
        "fit_true_fraction": round(float(y.mean()), 4) if len(y) else None,
    }
    if cfg.val:
        val = fusion_inputs(cfg.val, cfg.camera, cfg.lidar, on_step=stage("validation split"))
        metrics["validation"] = lidar_report(fused_predictions(head, val), val.samples, classes)
        metrics["lidar_only"] = lidar_report(val.preds, val.samples, classes)
    meta = {
        "classes": list(classes),
        "metrics": metrics,
        **base_record("camera", cfg.camera),
        **base_record("lidar", cfg.lidar),
    }
    save_weights(out / "fusion_late.pt", head, "fusion-late", meta)
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return metrics
