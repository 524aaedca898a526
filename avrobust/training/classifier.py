"""Training the sign classifier: seeded, with kornia augmentation, checkpoints every epoch and
resume, on CUDA when available."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import kornia.augmentation as K
import torch
from torch import nn

from avrobust.attacks.digital import PGD
from avrobust.core.device import resolve_device
from avrobust.core.files import atomic_write
from avrobust.models.crops import CropSet, load_crops
from avrobust.models.sign_classifier import SignClassifier
from avrobust.models.weights import save_weights
from avrobust.training.checkpoint import one_cycle, resume_checkpoint, save_checkpoint


@dataclass
class ClassifierTrainConfig:
    """Attributes: data (training dataset folder), val (held-out dataset folder), out (folder
    for checkpoint, weights and metrics), epochs, batch, lr, weight_decay, seed, device."""

    data: str
    out: str
    val: str | None = None
    epochs: int = 14
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    max_steps: int | None = None  # stop early (tests and smoke runs)
    # PGD adversarial training (Madry et al. 2018): this share of every batch is replaced by
    # L-inf PGD examples of the current model (the rest stays clean, which keeps clean accuracy).
    adversarial: bool = False
    eps: float = 8 / 255
    alpha: float = 2 / 255
    pgd_steps: int = 7
    adv_fraction: float = 0.5
    init: str | None = None  # start from these weights (adversarial fine-tuning)


def augmentation() -> nn.Module:
    """What a crop may look like in the field: position and scale jitter from imperfect boxes,
    rotation, light, colour, blur, noise."""
    return K.AugmentationSequential(
        K.RandomAffine(
            degrees=8.0,
            translate=(0.08, 0.08),
            scale=(0.85, 1.15),
            shear=5.0,
            padding_mode="border",
            p=0.9,
        ),
        K.ColorJitter(0.4, 0.4, 0.4, 0.03, p=0.8),
        K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=0.3),
        K.RandomGaussianNoise(std=0.03, p=0.3),
    )


def _class_weights(labels: torch.Tensor, n: int) -> torch.Tensor:
    counts = torch.bincount(labels, minlength=n).float().clamp(min=1)
    w = counts.sum() / counts
    return (w / w.mean()).sqrt()  # soften: background is common, but not to be ignored


def evaluate(
    model: nn.Module, crops: CropSet, device: torch.device | str = "cpu", batch: int = 512
) -> dict:
    """Accuracy overall, on signs at least 20 px tall, by distance band and by weather, and the
    confusion matrix (torchmetrics)."""
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

    from avrobust.core.classes import distance_band

    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(crops), batch):
            x = crops.images[i : i + batch].to(device).float() / 255.0
            preds.append(model(x).argmax(1).cpu())
    pred = torch.cat(preds)
    n = len(crops.classes)
    acc = MulticlassAccuracy(num_classes=n, average="micro")
    conf = MulticlassConfusionMatrix(num_classes=n)(pred, crops.labels)
    signs = crops.labels != crops.classes.index("background")
    big = signs & (crops.box_height >= 20)
    out = {
        "top1": float(acc(pred, crops.labels)),
        "top1_signs_ge_20px": float(acc(pred[big], crops.labels[big])) if big.any() else None,
        "count": len(crops),
        "count_signs_ge_20px": int(big.sum()),
        "by_distance": {},
        "by_weather": {},
        "confusion": conf.tolist(),
        "classes": list(crops.classes),
    }
    bands = [distance_band(float(d)) for d in crops.distance]
    for band in sorted(set(bands)):
        sel = torch.tensor([b == band for b in bands])
        out["by_distance"][band] = {
            "top1": float((pred[sel] == crops.labels[sel]).float().mean()),
            "count": int(sel.sum()),
        }
    for w in sorted(set(crops.weather)):
        sel = torch.tensor([x == w for x in crops.weather]) & signs
        if sel.any():
            out["by_weather"][w] = {
                "top1": float((pred[sel] == crops.labels[sel]).float().mean()),
                "count": int(sel.sum()),
            }
    return out


def robust_accuracy(
    model: nn.Module,
    crops: CropSet,
    eps: float,
    steps: int = 20,
    device: torch.device | str = "cpu",
    batch: int = 256,
    seed: int = 0,
    limit: int | None = None,
) -> float:
    """Top-1 under an untargeted L-inf PGD attack (``steps`` steps of eps/4, random start):
    the robust accuracy adversarial training is judged by. ``limit``: an evenly strided subset
    of that many crops (PGD-20 costs 20 backward passes per crop)."""
    gen = torch.Generator().manual_seed(seed)
    attack = PGD(model, eps, max(eps / 4, 1e-6), steps)
    idx = torch.arange(len(crops))
    if limit is not None and limit < len(crops):
        idx = torch.linspace(0, len(crops) - 1, limit).round().long()
    right = 0
    for i in range(0, len(idx), batch):
        x = crops.images[idx[i : i + batch]].to(device).float() / 255.0
        y = crops.labels[idx[i : i + batch]].to(device)
        adv = attack(x, y, gen) if eps > 0 else x
        with torch.no_grad():
            right += int((model(adv).argmax(1) == y).sum())
    return right / max(len(idx), 1)


def train_sign_classifier(
    cfg: ClassifierTrainConfig, on_step: Callable[[int, int, float], None] | None = None
) -> dict:
    """Train (resuming from ``out/checkpoint.pt`` when present); writes
    ``out/sign_classifier.pt`` and ``out/metrics.json``; returns the metrics."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train = load_crops(cfg.data)
    val = load_crops(cfg.val) if cfg.val else None
    model = SignClassifier()
    if cfg.init:
        from avrobust.models.weights import load_weights

        state, _ = load_weights(cfg.init, "sign-classifier")
        model.load_state_dict(state)
    model = model.to(device)
    aug = augmentation().to(device)
    pgd = PGD(model, cfg.eps, cfg.alpha, cfg.pgd_steps) if cfg.adversarial else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch)
    total = cfg.epochs * steps_per_epoch
    sched = one_cycle(opt, cfg.lr, total, 0.15)
    loss_fn = nn.CrossEntropyLoss(
        weight=_class_weights(train.labels, len(train.classes)).to(device), label_smoothing=0.05
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    ckpt = out / "checkpoint.pt"
    baseline = None
    if pgd is not None and cfg.init and val is not None and not ckpt.exists():
        # The starting model's robustness, for the before/after comparison of the card.
        baseline = {"robust_top1_linf_8_255": robust_accuracy(model, val, 8 / 255, device=device)}
    start_epoch, history = resume_checkpoint(ckpt, model, opt, sched, gen, device)
    step = start_epoch * steps_per_epoch
    t0 = time.monotonic()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch : (b + 1) * cfg.batch]
            x = train.images[idx].to(device).float() / 255.0
            y = train.labels[idx].to(device)
            with torch.no_grad():
                x = aug(x).clamp(0, 1)
            if pgd is not None:
                k = round(len(x) * cfg.adv_fraction)
                x = torch.cat([pgd(x[:k], y[:k], gen), x[k:]])
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach())
            step += 1
            if on_step:
                on_step(step, total, float(loss.detach()))
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
        entry = {
            "epoch": epoch + 1,
            "loss": running / max(1, b + 1),
            "seconds": time.monotonic() - t0,
        }
        if val is not None:
            entry["val_top1"] = evaluate(model, val, device)["top1"]
            if pgd is not None:
                entry["val_robust_top1_subset"] = robust_accuracy(
                    model, val, cfg.eps, device=device, limit=256
                )
        history.append(entry)
        save_checkpoint(ckpt, model, opt, sched, gen, epoch + 1, history)
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
    metrics = {
        "config": asdict(cfg),
        "history": history,
        "train_crops": len(train),
        "device": str(device),
    }
    if baseline is not None:
        metrics["baseline"] = baseline
    if val is not None:
        metrics["validation"] = evaluate(model, val, device)
        metrics["validation"]["robust_top1_linf_8_255"] = robust_accuracy(
            model, val, 8 / 255, device=device
        )
    save_weights(
        out / "sign_classifier.pt",
        model.cpu(),
        "sign-classifier",
        {"classes": list(model.classes), "input_size": 64, "metrics": metrics},
    )
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return metrics
