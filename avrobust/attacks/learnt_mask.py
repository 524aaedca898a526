"""Sticker masks learnt by an L1 stage, as RP2 (Eykholt et al. 2018) does: perturb the whole
face under an L1 penalty, which concentrates the perturbation where it matters most to the
model, then keep the most perturbed regions (smoothed into printable blobs) as the sticker mask
that the second stage optimises in.

The face is the part of the texture the camera ever sees (a sign's outline, say), found by
mapping the training views' visibility masks back onto the texture, so the mask's coverage is a
fraction of what a person would call the sign's face.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_perspective

from avrobust.attacks.compositor import texture_to_image
from avrobust.attacks.eot import EOT
from avrobust.attacks.frozen import frozen
from avrobust.attacks.texture_optimiser import TextureAttack
from avrobust.core.errors import ConfigError


@dataclass(frozen=True)
class LearntMaskSpec:
    """Learn the mask: ``coverage`` of the face, ``steps`` of the L1 stage with ``l1_weight``
    on the mean absolute perturbation, blobs smoothed over ``blob`` of the texture's side."""

    coverage: float
    steps: int = 150
    l1_weight: float = 1.0
    blob: float = 1 / 12

    def __post_init__(self) -> None:
        if not 0 < self.coverage <= 1:
            raise ConfigError(
                f"a learnt mask's coverage must be in (0, 1], got {self.coverage}",
                field="mask",
                allowed="learnt:F with 0 < F <= 1, e.g. learnt:0.25",
            )
        if self.steps < 1:
            raise ConfigError("the L1 stage needs at least one step", field="mask_steps")

    @classmethod
    def parse(cls, text: str, steps: int = 150) -> LearntMaskSpec | None:
        """``learnt:0.25`` -> a spec; anything else -> None (a named or file mask)."""
        if not text.startswith("learnt"):
            return None
        _, _, value = text.partition(":")
        try:
            coverage = float(value) if value else 0.25
        except ValueError:
            raise ConfigError(
                f"bad learnt mask {text!r}", field="mask", allowed="learnt:F, e.g. learnt:0.25"
            ) from None
        return cls(coverage, steps)


def visible_region(views: Sequence[Any], tex_hw: tuple[int, int], nearest: int = 4) -> torch.Tensor:
    """``[1, h, w]`` 0/1: the texture pixels the ``nearest`` largest views show (their
    visibility masks warped back onto the texture and united)."""
    h, w = tex_hw
    ranked = sorted(views, key=lambda v: -v.frame.surfaces[v.surface].visible_pixels)[:nearest]
    region = torch.zeros(1, h, w)
    for v in ranked:
        sv = v.frame.surfaces[v.surface]
        m = texture_to_image(sv.quad, h, w)
        back = warp_perspective(
            sv.mask[None, None].float(),
            torch.linalg.inv(m)[None],
            (h, w),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )[0]
        region = torch.maximum(region, (back > 0.5).float())
    if region.sum() == 0:
        raise ConfigError("no training view shows the surface", field="views")
    return region


def top_blobs(saliency: torch.Tensor, region: torch.Tensor, coverage: float, blob: int):
    """``[1, h, w]`` 0/1 mask: the ``coverage`` fraction of ``region`` where ``saliency``
    (``[h, w]``), averaged over ``blob``-pixel neighbourhoods, is largest."""
    k = max(1, blob) | 1  # odd, so the average is centred
    smooth = F.avg_pool2d(saliency[None, None], k, stride=1, padding=k // 2)[0, 0]
    inside = region[0] > 0.5
    n = max(1, round(coverage * int(inside.sum())))
    values = smooth[inside]
    cut = values.topk(min(n, values.numel())).values[-1]
    return ((smooth >= cut) & inside).float()[None]


def learn_mask(
    attack: TextureAttack,
    views: list[Any],
    base_texture: torch.Tensor,
    spec: LearntMaskSpec,
    seed: int = 0,
    on_step: Callable[[int, float, float], None] | None = None,
    region: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """The L1 stage: returns the ``[1, h, w]`` mask and its provenance. ``region``: the face
    (``[1, h, w]``; default: what the views show of the texture)."""
    if not views:
        raise ConfigError("no training view shows the surface", field="views")
    h, w = base_texture.shape[1:]
    if region is None:
        region = visible_region(views, (h, w))
    gen = torch.Generator().manual_seed(seed)
    eot = EOT(attack.eot)
    base = base_texture.clamp(0.02, 0.98)
    param = torch.logit(base).clone().requires_grad_(True)
    opt = torch.optim.Adam([param], lr=0.3)
    area = region.sum()
    with frozen(*attack.victims()), torch.enable_grad():
        for step in range(spec.steps):
            idx = torch.randperm(len(views), generator=gen)[: attack.batch].tolist()
            texture = torch.sigmoid(param)
            adv, met = attack.objective([views[i] for i in idx], texture, region, eot, step)
            l1 = ((texture - base).abs().sum(0, keepdim=True) * region).sum() / area
            loss = adv + spec.l1_weight * l1
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step:
                on_step(step, float(loss.detach()), float(met.float().mean()))
    saliency = (torch.sigmoid(param).detach() - base).abs().sum(0)
    mask = top_blobs(saliency, region, spec.coverage, math.ceil(spec.blob * max(h, w)))
    return mask, {
        "kind": "learnt-l1",
        "coverage_of_face": float(mask.sum() / area),
        "coverage_of_texture": float(mask.mean()),
        "face_fraction_of_texture": float(region.mean()),
        "steps": spec.steps,
        "l1_weight": spec.l1_weight,
        "blob": spec.blob,
    }


def resolve_mask(
    mask: torch.Tensor | LearntMaskSpec | None,
    attack: TextureAttack,
    views: list[Any],
    base_texture: torch.Tensor,
    seed: int = 0,
    on_step: Callable[[int, float, float], None] | None = None,
) -> tuple[torch.Tensor, dict]:
    """The ``[1, h, w]`` mask an attack optimises in: the whole texture for None, a given mask
    resampled to the texture, or one learnt by the L1 stage; with its provenance."""
    hw = base_texture.shape[1:]
    if mask is None:
        return torch.ones(1, *hw), {"kind": "whole"}
    if isinstance(mask, LearntMaskSpec):
        return learn_mask(attack, views, base_texture, mask, seed, on_step)
    if mask.shape[1:] != hw:
        mask = F.interpolate(mask[None].float(), size=hw, mode="nearest")[0]
    return mask, {"kind": "given", "coverage_of_texture": float(mask.mean())}
