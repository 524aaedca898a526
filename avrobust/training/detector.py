"""Training the camera detector: random scaled crops (centred on objects most of the time, so
that small far signs are seen often), flips and Kornia photometric jitter; seeded, checkpointed
every epoch and resumable, on CUDA when available."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from avrobust.core.device import resolve_device
from avrobust.core.errors import ConfigError
from avrobust.core.files import atomic_write
from avrobust.models.camera_detector import STRIDE, CameraDetector, load_camera_detector
from avrobust.models.detection_data import DetectionSet, load_detection_set
from avrobust.models.detection_loss import detection_loss, make_targets
from avrobust.models.detection_metrics import average_precision, detection_report, predict
from avrobust.models.weights import save_weights
from avrobust.training.checkpoint import one_cycle, resume_checkpoint, save_checkpoint
from avrobust.training.patch_adversarial import PatchTrainConfig, apply_patches, patch_masks


@dataclass
class DetectorTrainConfig:
    """Attributes: data (training KITTI tree), out (folder for checkpoint, weights and
    metrics), val (held-out tree), epochs (one crop per training image each), batch, crop
    (height, width of the training crops), lr, weight_decay, seed, device, max_steps (stop
    early: tests and smoke runs), val_images (images of the per-epoch check), limit (use only
    the first N training images), init (a ``camera-detector`` weights file to start from:
    fine-tuning), adversarial (patch adversarial training, see
    :mod:`avrobust.training.patch_adversarial`)."""

    data: str
    out: str
    val: str | None = None
    epochs: int = 20
    batch: int = 16
    crop: tuple[int, int] = (256, 320)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None
    val_images: int = 200
    limit: int | None = None
    init: str | None = None
    adversarial: PatchTrainConfig | None = None


def photometric() -> nn.Module:
    """Light, colour and sensor jitter on top of the simulator's own weather variety."""
    return K.AugmentationSequential(
        K.ColorJitter(0.3, 0.3, 0.3, 0.02, p=0.8),
        K.RandomGaussianNoise(std=0.02, p=0.3),
    )


def random_crop(
    image: torch.Tensor,
    boxes: torch.Tensor,
    crop: tuple[int, int],
    gen: torch.Generator,
    scale: tuple[float, float] = (0.75, 1.35),
    object_bias: float = 0.7,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A ``crop``-sized float image cut from ``image`` (uint8 ``[3, H, W]``) at a random
    scale, centred on a random object with probability ``object_bias``, flipped half the
    time; returns the crop, its boxes (clipped, xyxy) and the indices of the boxes kept."""
    _, h, w = image.shape
    ch, cw = crop

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    s = u(*scale)
    wh, ww = min(h, round(ch / s)), min(w, round(cw / s))
    if len(boxes) and float(torch.rand((), generator=gen)) < object_bias:
        k = int(torch.randint(len(boxes), (), generator=gen))
        cx = float(boxes[k, 0::2].mean()) + u(-ww / 3, ww / 3)
        cy = float(boxes[k, 1::2].mean()) + u(-wh / 3, wh / 3)
    else:
        cx, cy = u(0, w), u(0, h)
    x0 = int(min(max(cx - ww / 2, 0), w - ww))
    y0 = int(min(max(cy - wh / 2, 0), h - wh))
    patch = image[:, y0 : y0 + wh, x0 : x0 + ww].float()[None] / 255.0
    out = F.interpolate(patch, size=(ch, cw), mode="bilinear", antialias=True, align_corners=False)[
        0
    ]
    b = boxes.clone()
    b[:, 0::2] = ((b[:, 0::2] - x0) * (cw / ww)).clamp(0, cw)
    b[:, 1::2] = ((b[:, 1::2] - y0) * (ch / wh)).clamp(0, ch)
    keep = ((b[:, 2] - b[:, 0]) >= 2) & ((b[:, 3] - b[:, 1]) >= 2)
    if float(torch.rand((), generator=gen)) < 0.5:
        out = out.flip(-1)
        b = torch.stack([cw - b[:, 2], b[:, 1], cw - b[:, 0], b[:, 3]], 1)
    idx = torch.nonzero(keep).flatten()
    return out, b[idx], idx


def _batch(data: DetectionSet, indices: list[int], cfg: DetectorTrainConfig, gen: torch.Generator):
    """Crops, their targets, and their boxes and labels (crop pixels)."""
    images, targets, boxes_out, labels_out = [], [], [], []
    oh, ow = cfg.crop[0] // STRIDE, cfg.crop[1] // STRIDE
    for i in indices:
        t = data.targets[i]
        img, boxes, keep = random_crop(data.images[i], t.boxes, cfg.crop, gen)
        images.append(img)
        targets.append(make_targets(boxes, t.labels[keep], len(data.classes), (oh, ow)))
        boxes_out.append(boxes)
        labels_out.append(t.labels[keep])
    return torch.stack(images), targets, boxes_out, labels_out


def _patched(model, x, targets, boxes, labels, cfg: DetectorTrainConfig, gen) -> tuple:
    """The batch with patch adversarial training's patches (the attack sees the model in
    evaluation mode, as an attacker would); returns the images and the patched count."""
    adv = cfg.adversarial
    mask, chosen = patch_masks(boxes, labels, model.classes, cfg.crop, adv, gen)

    def loss_of(images: torch.Tensor, idx: list[int]) -> torch.Tensor:
        return detection_loss(model(images), [targets[i] for i in idx])[0]

    model.eval()
    x, _ = apply_patches(x, mask, chosen, loss_of, adv, gen)
    model.train()
    return x, len(chosen)


def _quick_check(model: CameraDetector, val: DetectionSet, device: torch.device) -> float | None:
    model.eval()
    preds = predict(model.detect, val, device=device)
    model.train()
    return average_precision(preds, val.targets, val.classes)["map50"]


def train_camera_detector(
    cfg: DetectorTrainConfig, on_step: Callable[[int, int, float], None] | None = None
) -> dict:
    """Train (resuming from ``out/checkpoint.pt`` when present); writes
    ``out/camera_detector.pt`` and ``out/metrics.json``; returns the metrics."""
    if cfg.crop[0] % 32 or cfg.crop[1] % 32:
        raise ConfigError(f"crop sides must be multiples of 32, got {cfg.crop}", field="crop")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train = load_detection_set(cfg.data, limit=cfg.limit)
    val = load_detection_set(cfg.val) if cfg.val else None
    check = val.subset(list(range(min(cfg.val_images, len(val))))) if val else None
    model = CameraDetector()
    if cfg.init:
        model = load_camera_detector(cfg.init)
    model = model.to(device).to(memory_format=torch.channels_last)
    aug = photometric().to(device)
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
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        running, parts, steps, patched = 0.0, {"heatmap": 0.0, "size": 0.0, "offset": 0.0}, 0, 0
        for b in range(steps_per_epoch):
            if step >= total:
                break
            x, targets, boxes, labels = _batch(
                train, order[b * cfg.batch : (b + 1) * cfg.batch], cfg, gen
            )
            x = x.to(device)
            with torch.no_grad():
                x = aug(x).clamp(0, 1).contiguous(memory_format=torch.channels_last)
            if cfg.adversarial is not None:
                # After the photometric jitter: the patch is judged as the camera sees it.
                x, n = _patched(model, x, targets, boxes, labels, cfg, gen)
                patched += n
            loss, part = detection_loss(model(x), targets)
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
            entry["patched_crops"] = patched
        if check is not None:
            entry["val_map50_40m"] = _quick_check(model, check, device)
        history.append(entry)
        save_checkpoint(ckpt, model, opt, sched, gen, epoch + 1, history, asdict(cfg))
        if step >= total:
            break
    model.eval()
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "train_images": len(train),
        "device": str(device),
    }
    if val is not None:
        metrics["validation"] = detection_report(predict(model.detect, val, device=device), val)
    save_weights(
        out / "camera_detector.pt",
        model.cpu().to(memory_format=torch.contiguous_format),
        "camera-detector",
        {"classes": list(model.classes), "metrics": metrics},
    )
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return metrics
