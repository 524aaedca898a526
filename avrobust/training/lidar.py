"""Training the LiDAR detector: global flip, rotation and scaling of each sweep (the usual
PointPillars augmentation), 25.6 m crops of the pillar grid centred on an object most of the
time, CenterPoint targets and losses with the loss masked outside the camera's field of view
(nothing is labelled there); seeded, checkpointed every epoch and resumable."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from avrobust.core.boxes import Box3D
from avrobust.core.device import resolve_device
from avrobust.core.errors import ConfigError, ModelError
from avrobust.core.files import atomic_write
from avrobust.core.sensors import LidarSpec
from avrobust.models.detection_loss import focal_loss, gaussian_radius
from avrobust.models.fusion_data import camera_detections
from avrobust.models.lidar_data import LidarSample, load_lidar_set
from avrobust.models.lidar_detector import BEVGrid, LidarDetector, yaw_encoding
from avrobust.models.lidar_metrics import lidar_ap, lidar_report
from avrobust.models.painting import Painter
from avrobust.models.weights import base_record, load_weights, save_weights
from avrobust.training.checkpoint import one_cycle, resume_checkpoint, save_checkpoint
from avrobust.training.lidar_adversarial import LidarAdvConfig, attack_sample


@dataclass
class LidarTrainConfig:
    """Attributes: data, out, val (as for the camera detector), epochs, batch, crop (pillars
    per side of the training crops, a multiple of 8), lr, weight_decay, seed, device,
    max_steps, val_samples (sweeps of the per-epoch check), limit (first N training sweeps),
    init (a ``lidar-detector`` weights file to start from), camera (a ``camera-detector``
    weights file: train the PointPainting detector on points painted with its detections),
    paint_drop and paint_drop_all (training-time dropout of each camera detection, of all of
    a sweep's: see :func:`~avrobust.models.painting.drop_detections`), adversarial (LiDAR
    adversarial training: see :mod:`avrobust.training.lidar_adversarial`)."""

    data: str
    out: str
    val: str | None = None
    epochs: int = 10
    batch: int = 8
    crop: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    val_samples: int = 150
    limit: int | None = None
    init: str | None = None
    camera: str | None = None
    paint_drop: float = 0.2
    paint_drop_all: float = 0.1
    adversarial: LidarAdvConfig | None = None


def augment(s: LidarSample, gen: torch.Generator) -> LidarSample:
    """A flipped (left-right), rotated (within 6 degrees) and scaled (0.95-1.05) copy."""

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    pts = s.points.clone()
    center, size, yaw = s.boxes.center.clone(), s.boxes.size.clone(), s.boxes.yaw.clone()
    axis = s.fov_axis
    if float(torch.rand((), generator=gen)) < 0.5:
        pts[:, 1] = -pts[:, 1]
        center[:, 1] = -center[:, 1]
        yaw, axis = -yaw, -axis
    a, k = u(-math.radians(6), math.radians(6)), u(0.95, 1.05)
    c, sn = math.cos(a), math.sin(a)
    rot = torch.tensor([[c, -sn], [sn, c]])
    pts[:, :2] = pts[:, :2] @ rot.T
    center[:, :2] = center[:, :2] @ rot.T
    pts[:, :3] *= k
    return LidarSample(
        pts,
        Box3D(center * k, size * k, yaw + a),
        s.labels,
        s.occluded,
        s.num_points,
        axis + a,
        s.fov_half,
        s.weather,
        s.name,
    )


def lidar_targets(
    s: LidarSample, grid: BEVGrid, start: tuple[int, int], out_hw: tuple[int, int], num_classes: int
) -> dict[str, torch.Tensor]:
    """Heatmap, per-object cell and regression targets, and the loss mask, for the crop whose
    first pillar is ``start`` (ix, iy) and whose output is ``out_hw`` cells."""
    h, w = out_hw
    cx0, cy0 = start[0] / grid.stride, start[1] / grid.stride
    heat = torch.zeros(num_classes, h, w)
    cells, reg = [], []
    ii, jj = torch.arange(h).view(-1, 1).float(), torch.arange(w).view(1, -1).float()
    enc = yaw_encoding(s.boxes.yaw) if len(s.boxes) else torch.zeros(0, 2)
    for k in range(len(s.boxes)):
        x, y, z = (float(v) for v in s.boxes.center[k])
        length, width, height = (float(v) for v in s.boxes.size[k])
        lx = (x - grid.x_range[0]) / grid.cell - cx0
        ly = (y - grid.y_range[0]) / grid.cell - cy0
        i, j = math.floor(lx), math.floor(ly)
        if not (0 <= i < h and 0 <= j < w):
            continue
        r = max(1.0, gaussian_radius(length / grid.cell, width / grid.cell, 0.1))
        sigma = (2 * r + 1) / 6
        g = torch.exp(-((ii - i) ** 2 + (jj - j) ** 2) / (2 * sigma**2))
        lab = int(s.labels[k])
        heat[lab] = torch.maximum(heat[lab], g)
        cells.append(i * w + j)
        reg.append(
            [
                lx - i,
                ly - j,
                z,
                math.log(length),
                math.log(width),
                math.log(height),
                *enc[k].tolist(),
            ]
        )
    # Cell centres in metres: the loss counts only where the camera saw (labels exist).
    xs = grid.x_range[0] + (cx0 + ii + 0.5) * grid.cell
    ys = grid.y_range[0] + (cy0 + jj + 0.5) * grid.cell
    xy = torch.stack([xs.expand(h, w), ys.expand(h, w)], -1).reshape(-1, 2)
    mask = s.in_fov(xy, margin=-math.radians(3)).reshape(h, w).float()
    return {
        "heatmap": heat,
        "cell": torch.tensor(cells, dtype=torch.long),
        "regress": torch.tensor(reg, dtype=torch.float32).reshape(-1, 8),
        "mask": mask,
    }


def lidar_loss(
    out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
) -> tuple[torch.Tensor, dict[str, float]]:
    dev = out["heatmap"].device
    heat = torch.stack([t["heatmap"] for t in targets]).to(dev)
    mask = torch.stack([t["mask"] for t in targets]).to(dev)[:, None]
    n = max(1, sum(int(t["cell"].numel()) for t in targets))
    # focal_loss sums over cells: masking the logits' loss means masking both terms.
    l_heat = focal_loss(out["heatmap"] * mask + (1 - mask) * -20.0, heat * mask) / n
    err = []
    for i, t in enumerate(targets):
        if t["cell"].numel():
            err.append(out["regress"][i].flatten(1)[:, t["cell"].to(dev)].T - t["regress"].to(dev))
    l_reg = torch.cat(err).abs().sum() / n if err else out["regress"].sum() * 0
    total = l_heat + l_reg
    return total, {"heatmap": float(l_heat.detach()), "regress": float(l_reg.detach())}


def _crop_start(
    s: LidarSample,
    grid: BEVGrid,
    crop: int,
    gen: torch.Generator,
    focus: tuple[float, float] | None = None,
) -> tuple[int, int]:
    """A crop centred near a random object 70% of the time (near ``focus``, metres, always,
    when given: an attacked spot), anywhere otherwise."""

    def r(n: int) -> int:
        return int(torch.randint(n + 1, (), generator=gen))

    mx, my = grid.nx - crop, grid.ny - crop
    if focus is not None or (len(s.boxes) and float(torch.rand((), generator=gen)) < 0.7):
        if focus is None:
            k = int(torch.randint(len(s.boxes), (), generator=gen))
            focus = (float(s.boxes.center[k, 0]), float(s.boxes.center[k, 1]))
        px = (focus[0] - grid.x_range[0]) / grid.pillar
        py = (focus[1] - grid.y_range[0]) / grid.pillar
        jx, jy = r(crop // 2) - crop // 4, r(crop // 2) - crop // 4
        x0, y0 = int(px) - crop // 2 + jx, int(py) - crop // 2 + jy
    else:
        x0, y0 = r(mx), r(my)
    # Multiples of 8 pillars keep the crop aligned with the backbone's strides.
    x0 = min(max(x0, 0), mx) // 8 * 8
    y0 = min(max(y0, 0), my) // 8 * 8
    return x0, y0


def weights_kind(cfg: LidarTrainConfig) -> str:
    return "fusion-painting" if cfg.camera else "lidar-detector"


def weights_name(cfg: LidarTrainConfig) -> str:
    return weights_kind(cfg).replace("-", "_") + ".pt"


def start_from(model: LidarDetector, path: str) -> None:
    """Load a trained LiDAR detector's weights into ``model``; the painted channels that the
    file's first layer lacks start at zero weight, so training begins from the plain
    detector's behaviour."""
    state, _ = load_weights(path, "lidar-detector")
    key = "pfn.0.weight"
    mine = model.state_dict()[key]
    if state[key].shape != mine.shape:
        w = torch.zeros_like(mine)
        w[:, : state[key].shape[1]] = state[key]
        state = {**state, key: w}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"cannot start from these weights ({exc})".splitlines()[0], file=path
        ) from None


def predict_lidar(
    model: LidarDetector,
    samples: list[LidarSample],
    device,
    batch: int = 4,
    score_threshold: float = 0.1,
):
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            pts = [s.points.to(device) for s in samples[i : i + batch]]
            for boxes, scores, labels in model.detect(pts, score_threshold):
                preds.append((boxes.to("cpu"), scores.cpu(), labels.cpu()))
    return preds


def train_lidar_detector(
    cfg: LidarTrainConfig,
    on_step: Callable[[int, int, float], None] | None = None,
    on_paint: Callable[[int, int], None] | None = None,
) -> dict:
    """Train (resuming from ``out/checkpoint.pt``); writes ``out/lidar_detector.pt`` (with
    ``camera``: ``out/fusion_painting.pt``) and ``out/metrics.json``; returns the metrics.
    ``on_paint(done, total)`` follows the camera detections painting needs."""
    if cfg.crop % 8:
        raise ConfigError(f"crop must be a multiple of 8 pillars, got {cfg.crop}", field="crop")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    painter = None
    if cfg.camera:
        _, cam_meta = load_weights(cfg.camera, "camera-detector")
        painter = Painter(tuple(cam_meta["classes"]))
    model = LidarDetector(extra_features=painter.channels if painter else 0)
    if cfg.init:
        start_from(model, cfg.init)
    model = model.to(device)
    grid = model.grid
    if cfg.crop > min(grid.nx, grid.ny):
        raise ConfigError(f"crop larger than the grid ({grid.nx} pillars)", field="crop")
    train = load_lidar_set(cfg.data, limit=cfg.limit)
    val = load_lidar_set(cfg.val) if cfg.val else None
    if painter:
        names = [s.name for s in train] + ([s.name for s in val] if val else [])

        def progress(done: int, total: int, offset: int = 0) -> None:
            if on_paint:
                on_paint(offset + done, len(names))

        train_dets = camera_detections(cfg.data, cfg.camera, names[: len(train)], on_step=progress)
        if val:
            val_dets = camera_detections(
                cfg.val,
                cfg.camera,
                names[len(train) :],
                on_step=lambda d, t: progress(d, t, len(train)),
            )
            val = [painter(s, d) for s, d in zip(val, val_dets, strict=True)]
    check = val[: cfg.val_samples] if val else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    sched = one_cycle(opt, cfg.lr, total, 0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out / "checkpoint.pt"
    start_epoch, history = resume_checkpoint(ckpt, model, opt, sched, gen, device, asdict(cfg))
    step = sum(h["steps"] for h in history)
    t0 = time.monotonic() - (history[-1]["seconds"] if history else 0.0)
    half = cfg.crop // grid.stride
    spec = LidarSpec()  # the dataset's LiDAR (avrobust dataset build renders the default one)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        running, parts, steps = 0.0, {"heatmap": 0.0, "regress": 0.0}, 0
        attacked: dict[str, int] = {}
        for b in range(steps_per_epoch):
            if step >= total:
                break
            batch = [train[i] for i in order[b * cfg.batch : (b + 1) * cfg.batch]]
            if painter:
                batch = [
                    painter(s, train_dets[i], gen, cfg.paint_drop, cfg.paint_drop_all)
                    for s, i in zip(batch, order[b * cfg.batch : (b + 1) * cfg.batch], strict=True)
                ]
            batch = [augment(s, gen) for s in batch]
            focus: list[tuple[float, float] | None] = [None] * len(batch)
            if cfg.adversarial is not None:
                # Attacks after augmentation: rotations about z and flips keep every return
                # on a ray of the sensor, so the threat model still holds.
                done = [attack_sample(s, model, spec, cfg.adversarial, gen) for s in batch]
                model.train()
                batch = [a.sample for a in done]
                focus = [a.focus for a in done]
                for a in done:
                    attacked[a.kind] = attacked.get(a.kind, 0) + 1
            starts = [
                _crop_start(s, grid, cfg.crop, gen, f) for s, f in zip(batch, focus, strict=True)
            ]
            # Pillarise only the crops: no work or gradient for the rest of the grid.
            crops = model.canvas(
                [s.points.to(device) for s in batch],
                [grid.crop(x0, y0, cfg.crop) for x0, y0 in starts],
            )
            targets = [
                lidar_targets(s, grid, st, (half, half), len(model.classes))
                for s, st in zip(batch, starts, strict=True)
            ]
            loss, part = lidar_loss(model.head(crops), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            sched.step()
            running += float(loss.detach())
            for k in parts:
                parts[k] += part[k]
            step += 1
            steps += 1
            if on_step:
                on_step(step, total, float(loss.detach()))
        entry = {
            "epoch": epoch + 1,
            "steps": steps,
            "loss": running / max(1, steps),
            **{f"loss_{k}": v / max(1, steps) for k, v in parts.items()},
            "seconds": time.monotonic() - t0,
        }
        if cfg.adversarial is not None:
            entry["attacked_sweeps"] = attacked
        if check:
            ap = lidar_ap(predict_lidar(model, check, device), check, model.classes)
            entry["val_bev_car_40m"] = ap["bev"].get("car")
        history.append(entry)
        save_checkpoint(ckpt, model, opt, sched, gen, epoch + 1, history, asdict(cfg))
        if step >= total:
            break
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "train_sweeps": len(train),
        "device": str(device),
    }
    if val:
        metrics["validation"] = lidar_report(predict_lidar(model, val, device), val, model.classes)
    meta = {
        "classes": list(model.classes),
        "grid": asdict(grid),
        "extra_features": model.extra_features,
        "metrics": metrics,
    }
    if painter:
        meta.update(paint_classes=list(painter.paint_classes), **base_record("camera", cfg.camera))
    save_weights(out / weights_name(cfg), model.cpu(), weights_kind(cfg), meta)
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return metrics
