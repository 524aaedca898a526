"""Patch adversarial training of the camera detector: a share of every training batch carries a
patch on one of its signs or vehicles, random or optimised against the current model.

This is the defence against occlusion attacks of Wu et al. 2020 (DOA: adversarial training
with rectangular occlusion attacks) carried over to a detector: the patch is a rectangle
inside a labelled object's box (a sticker or poster stuck on it), covering a random share of
the box; its pixels are either random (noise or blocks of random colours, the look of printed
patches) or optimised by a few steps of sign-gradient ascent on the detection loss of the
current model (PGD inside the rectangle, unbounded in colour as a printed patch is). The
labels stay: the detector learns to find the object anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from avrobust.core.errors import ConfigError


@dataclass
class PatchTrainConfig:
    """Attributes: share (crops of each batch given a patch), optimised (share of the patched
    crops whose patch is optimised; the rest are random), area (range of the patch's share of
    its object's box), classes (labels patches are stuck on), steps and step_size (the
    optimised patches' sign-gradient ascent, pixel values in [0, 1]), min_side (pixels: smaller
    objects get no patch)."""

    share: float = 0.5
    optimised: float = 0.5
    area: tuple[float, float] = (0.1, 0.3)
    classes: tuple[str, ...] = ("traffic_sign", "car")
    steps: int = 4
    step_size: float = 0.2
    min_side: float = 12.0

    def __post_init__(self) -> None:
        for name in ("share", "optimised"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {v}", field=name)
        lo, hi = self.area
        if not 0.0 < lo <= hi < 1.0:
            raise ConfigError(f"area must be 0 < low <= high < 1, got {self.area}", field="area")
        if self.steps < 0 or self.step_size <= 0:
            raise ConfigError("steps must be >= 0 and step_size > 0", field="steps")


def patch_masks(
    boxes: list[torch.Tensor],
    labels: list[torch.Tensor],
    class_names: tuple[str, ...],
    size: tuple[int, int],
    cfg: PatchTrainConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One patch rectangle per chosen crop: ``mask`` ``[B, 1, H, W]`` (1 inside) and the
    indices of the patched crops. A crop is chosen with probability ``cfg.share`` when it has
    an object of ``cfg.classes`` at least ``min_side`` pixels on each side; the patch covers a
    share of that object's box drawn from ``cfg.area``, aspect 1:2 to 2:1, anywhere inside it."""
    unknown = set(cfg.classes) - set(class_names)
    if unknown:
        raise ConfigError(
            f"no such class {sorted(unknown)[0]!r}", field="classes", allowed=", ".join(class_names)
        )
    wanted = torch.tensor([class_names.index(c) for c in cfg.classes])
    h, w = size
    mask = torch.zeros(len(boxes), 1, h, w)
    chosen = []

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=gen))

    for i, (b, lab) in enumerate(zip(boxes, labels, strict=True)):
        if float(torch.rand((), generator=gen)) >= cfg.share or len(b) == 0:
            continue
        bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        ok = torch.isin(lab, wanted) & (bw >= cfg.min_side) & (bh >= cfg.min_side)
        idx = ok.nonzero().flatten()
        if len(idx) == 0:
            continue
        k = int(idx[int(torch.randint(len(idx), (), generator=gen))])
        x1, y1, x2, y2 = (float(v) for v in b[k])
        area = u(*cfg.area) * (x2 - x1) * (y2 - y1)
        aspect = 2.0 ** u(-1.0, 1.0)
        pw = min(x2 - x1, (area * aspect) ** 0.5)
        ph = min(y2 - y1, area / pw)
        px, py = u(x1, x2 - pw), u(y1, y2 - ph)
        c0, c1 = round(px), max(round(px + pw), round(px) + 1)
        r0, r1 = round(py), max(round(py + ph), round(py) + 1)
        mask[i, 0, max(r0, 0) : min(r1, h), max(c0, 0) : min(c1, w)] = 1.0
        chosen.append(i)
    return mask, torch.tensor(chosen, dtype=torch.long)


def random_content(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Patch pixels for ``shape`` ``[B, 3, H, W]``: per image, uniform noise or blocks of
    random colours (a coarse grid of 2-16 cells a side, nearest-upsampled)."""
    b, c, h, w = shape
    out = torch.rand(shape, generator=gen)
    for i in range(b):
        if float(torch.rand((), generator=gen)) < 0.5:
            n = int(torch.randint(2, 17, (), generator=gen))
            coarse = torch.rand(1, c, n, n, generator=gen)
            out[i] = F.interpolate(coarse, size=(h, w), mode="nearest")[0]
    return out


def apply_patches(
    x: torch.Tensor,
    mask: torch.Tensor,
    chosen: torch.Tensor,
    loss_of: Callable[[torch.Tensor, list[int]], torch.Tensor],
    cfg: PatchTrainConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, int]:
    """``x`` with the patches of :func:`patch_masks` pasted in; the first ``optimised`` share
    of the chosen crops get ``cfg.steps`` steps of sign-gradient ascent on
    ``loss_of(images, crop_indices)`` (the detection loss of those crops under the current
    model). Returns the images and how many patches were optimised."""
    if len(chosen) == 0:
        return x, 0
    content = random_content(tuple(x.shape), gen).to(x.device)
    m = mask.to(x.device)
    out = x * (1 - m) + content * m
    n_opt = round(len(chosen) * cfg.optimised)
    if n_opt == 0 or cfg.steps == 0:
        return out, 0
    idx = chosen[:n_opt].to(x.device)
    base, mk = x[idx], m[idx]
    p = content[idx].clone()
    for _ in range(cfg.steps):
        p.requires_grad_(True)
        loss = loss_of(base * (1 - mk) + p * mk, idx.tolist())
        (grad,) = torch.autograd.grad(loss, p)
        p = (p.detach() + cfg.step_size * grad.sign()).clamp(0, 1)
    out = out.clone()
    out[idx] = base * (1 - mk) + p.detach() * mk
    return out, n_opt
