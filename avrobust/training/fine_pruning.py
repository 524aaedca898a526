"""Fine-pruning (Liu, Dolan-Gavitt and Garg 2018): repair a possibly backdoored classifier with
clean data only. The last convolution's channels are pruned in order of their mean activation
on clean crops (a backdoor tends to live in channels clean inputs leave dormant) until clean
top-1 on the defender's crops has dropped by ``max_drop``, then the pruned model is fine-tuned
on the same clean crops (the pruned channels held at zero).

A channel is pruned by zeroing its batch-norm scale and shift, so its output after the ReLU is
zero whatever the convolution computes; the model keeps its shape and output format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from avrobust.core.errors import ConfigError
from avrobust.core.files import atomic_write
from avrobust.models.crops import CropSet, load_crops


@dataclass
class FinePruneConfig:
    """Attributes: weights (the model to repair), clean (the defender's clean crops, a dataset
    folder), out (folder for the repaired weights and metrics), norm (the batch norm after the
    last convolution; the shipped classifier's), max_drop (clean top-1 the pruning may cost,
    Liu et al.'s 4 points), step (channels pruned at a time), epochs, lr, batch, seed."""

    weights: str
    clean: str
    out: str
    norm: str = "features.19"
    max_drop: float = 0.04
    step: int = 4
    epochs: int = 2
    lr: float = 1e-3
    batch: int = 128
    seed: int = 0


def _top1(model: nn.Module, crops: CropSet) -> float:
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(crops), 512):
            x = crops.images[i : i + 512].float() / 255
            right += int((model(x).argmax(1) == crops.labels[i : i + 512]).sum())
    return right / len(crops)


def channel_activity(model: nn.Module, norm: nn.BatchNorm2d, crops: CropSet) -> torch.Tensor:
    """``[C]`` mean activation of each channel after ``norm`` and the ReLU, on ``crops``."""
    total, count = torch.zeros(norm.num_features), 0

    def add(module, inputs, output) -> None:  # a hook returning a value would replace the output
        total.add_(torch.relu(output).mean((2, 3)).sum(0))

    handle = norm.register_forward_hook(add)
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(crops), 512):
                model(crops.images[i : i + 512].float() / 255)
                count += min(512, len(crops) - i)
    finally:
        handle.remove()
    return total / max(count, 1)


def _zero(norm: nn.BatchNorm2d, channels: list[int]) -> None:
    with torch.no_grad():
        norm.weight[channels] = 0
        norm.bias[channels] = 0


def prune(
    model: nn.Module, norm: nn.BatchNorm2d, crops: CropSet, max_drop: float, step: int
) -> tuple[list[int], list[dict]]:
    """Prune the least active channels, ``step`` at a time, while clean top-1 stays within
    ``max_drop`` of the start; returns the pruned channels and the curve (pruned, top-1)."""
    order = channel_activity(model, norm, crops).argsort().tolist()
    base = _top1(model, crops)
    curve = [{"pruned": 0, "top1": base}]
    pruned: list[int] = []
    saved = (norm.weight.detach().clone(), norm.bias.detach().clone())
    for k in range(step, len(order), step):
        _zero(norm, order[:k])
        acc = _top1(model, crops)
        curve.append({"pruned": k, "top1": acc})
        if base - acc > max_drop:
            break
        pruned = order[:k]
    with torch.no_grad():  # back to the last setting within budget
        norm.weight.copy_(saved[0])
        norm.bias.copy_(saved[1])
    _zero(norm, pruned)
    return pruned, curve


def fine_prune(
    cfg: FinePruneConfig, on_step: Callable[[int, int, float], None] | None = None
) -> dict:
    """Prune and fine-tune ``cfg.weights`` on ``cfg.clean``; writes ``out/sign_classifier.pt``
    and ``out/metrics.json``; returns the metrics."""
    from avrobust.models.sign_classifier import SignClassifier
    from avrobust.models.weights import load_weights, save_weights
    from avrobust.training.classifier import augmentation

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    crops = load_crops(cfg.clean)
    model = SignClassifier()
    state, _ = load_weights(cfg.weights, "sign-classifier")
    model.load_state_dict(state)
    norm = dict(model.named_modules()).get(cfg.norm)
    if not isinstance(norm, nn.BatchNorm2d):
        raise ConfigError(f"{cfg.norm!r} is not a batch norm of the model", field="norm")
    t0 = time.monotonic()
    before = _top1(model, crops)
    pruned, curve = prune(model, norm, crops, cfg.max_drop, cfg.step)
    after_prune = _top1(model, crops)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    aug, loss_fn = augmentation(), nn.CrossEntropyLoss(label_smoothing=0.05)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.epochs * -(-len(crops) // cfg.batch)
    step = 0
    for _ in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(crops), generator=gen)
        for b in range(0, len(crops), cfg.batch):
            idx = order[b : b + cfg.batch]
            with torch.no_grad():
                x = aug(crops.images[idx].float() / 255).clamp(0, 1)
            loss = loss_fn(model(x), crops.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _zero(norm, pruned)  # pruned channels stay pruned
            step += 1
            if on_step:
                on_step(step, steps, float(loss.detach()))
    metrics = {
        "config": asdict(cfg),
        "channels": norm.num_features,
        "pruned": len(pruned),
        "pruned_channels": pruned,
        "clean_top1": {
            "before": before,
            "pruned": after_prune,
            "fine_tuned": _top1(model, crops),
            "on": str(cfg.clean),
            "crops": len(crops),
        },
        "curve": curve,
        "seconds": time.monotonic() - t0,
    }
    save_weights(
        out / "sign_classifier.pt",
        model,
        "sign-classifier",
        {"classes": list(model.classes), "input_size": 64, "fine_pruning": metrics},
    )
    with atomic_write(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return metrics
