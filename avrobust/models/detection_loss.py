"""Training targets and loss of the centre-heatmap detector (CenterNet): a Gaussian peak per
object on its class channel, penalty-reduced focal loss on the heatmap, L1 on log box size and
on the sub-cell centre offset at each object's peak."""

from __future__ import annotations

import math

import torch

from avrobust.models.camera_detector import STRIDE


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius (output cells): the largest corner shift that keeps IoU with the
    true box at ``min_overlap`` (the smallest of the three cases of CornerNet)."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def make_targets(
    boxes: torch.Tensor, labels: torch.Tensor, num_classes: int, out_hw: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Targets for one image: ``heatmap`` ``[C, h, w]`` and, per object, its peak ``cell``
    (flat index), ``size`` (log width and height, pixels) and ``offset`` (cells)."""
    oh, ow = out_hw
    heat = torch.zeros(num_classes, oh, ow)
    cells, sizes, offsets = [], [], []
    ys, xs = torch.arange(oh).view(-1, 1).float(), torch.arange(ow).view(1, -1).float()
    for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        if w < 1 or h < 1:
            continue
        cx, cy = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        ix, iy = int(cx), int(cy)
        if not (0 <= ix < ow and 0 <= iy < oh):
            continue
        r = max(0.0, gaussian_radius(h / STRIDE, w / STRIDE))
        sigma = (2 * r + 1) / 6
        g = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
        heat[label] = torch.maximum(heat[label], g)
        cells.append(iy * ow + ix)
        sizes.append((math.log(w), math.log(h)))
        offsets.append((cx - ix, cy - iy))
    return {
        "heatmap": heat,
        "cell": torch.tensor(cells, dtype=torch.long),
        "size": torch.tensor(sizes, dtype=torch.float32).reshape(-1, 2),
        "offset": torch.tensor(offsets, dtype=torch.float32).reshape(-1, 2),
    }


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed; the caller
    normalises by the number of objects."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    log_p = torch.nn.functional.logsigmoid(logits)
    log_not_p = torch.nn.functional.logsigmoid(-logits)
    pos_loss = -(log_p * (1 - p) ** 2 * pos)
    neg_loss = -(log_not_p * p**2 * (1 - target) ** 4 * (1 - pos))
    return (pos_loss + neg_loss).sum()


def detection_loss(
    out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of a batch and its parts (heatmap, size, offset)."""
    heat = torch.stack([t["heatmap"] for t in targets]).to(out["heatmap"].device)
    n = max(1, sum(int(t["cell"].numel()) for t in targets))
    l_heat = focal_loss(out["heatmap"], heat) / n
    size_err, off_err = [], []
    for i, t in enumerate(targets):
        if t["cell"].numel() == 0:
            continue
        cell = t["cell"].to(heat.device)
        size_err.append(out["size"][i].flatten(1)[:, cell].T - t["size"].to(heat.device))
        off_err.append(out["offset"][i].flatten(1)[:, cell].T - t["offset"].to(heat.device))
    zero = out["size"].sum() * 0
    l_size = torch.cat(size_err).abs().sum() / n if size_err else zero
    l_off = torch.cat(off_err).abs().sum() / n if off_err else zero
    total = l_heat + l_size + l_off
    parts = {"heatmap": l_heat, "size": l_size, "offset": l_off}
    return total, {k: float(v.detach()) for k, v in parts.items()}
