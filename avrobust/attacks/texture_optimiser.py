"""One texture optimiser for every printable-texture attack (the sign sticker, the detector
patch, the adversarial object's camera side).

Adam works on the texture's logits, so the texture stays in [0, 1] without clipped gradients;
``lr`` is Adam's step size on those logits (0.3 moves a mid-grey texel by about 0.07 per step).
Each step draws ``batch`` training views, asks the attack's objective for its adversarial loss,
adds the printability (NPS, Sharif et al. 2016) and smoothness (TV) terms inside the mask, and
steps. ``texture_res`` optimises a coarser grid of that many cells across, bilinearly upsampled
(a far camera point-samples a few texels, and a finer pattern does not survive a change of
viewpoint); ``schedule="cosine"`` decays the step to zero; ``keep="best"`` returns the texture of
the lowest adversarial loss (averaged over the last five steps) instead of the last one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

import torch

from avrobust.attacks.frozen import frozen
from avrobust.attacks.grid import coarse_grid
from avrobust.attacks.printability import load_palette, nps, total_variation
from avrobust.core.errors import ConfigError

#: ``objective(view indices, texture [3, h, w], step) -> (adversarial loss, per-draw success)``.
Objective = Callable[[list[int], torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]
#: ``on_step(step, loss, success rate)`` after every step (progress bars).
OnStep = Callable[[int, float, float], None]
SMOOTHING = 5  # steps averaged when keeping the best texture


class TextureAttack(Protocol):
    """What a texture attack (the sign sticker, the detector patch) offers: the models it holds
    still (``victims``), its adversarial loss and per-draw success on a batch of views
    (``objective``, the L1 mask stage uses it too), its optimiser, and a call that returns the
    :class:`~avrobust.core.patch.Patch`."""

    eot: str
    batch: int

    def victims(self) -> tuple[torch.nn.Module, ...]: ...

    def objective(
        self, views: list[Any], texture: torch.Tensor, mask: torch.Tensor, eot: Any, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def optimiser(self) -> TextureOptimiser: ...

    def __call__(
        self,
        views: list[Any],
        base_texture: torch.Tensor,
        mask: torch.Tensor,
        size_m: tuple[float, float],
        on_step: OnStep | None = None,
    ) -> Any: ...


@dataclass
class Optimised:
    """The optimiser's result: the ``[3, h, w]`` texture, the ``[K, 3]`` palette it was held
    to and, per step, the total loss, the adversarial part of it and the share of the batch's
    draws that met the goal."""

    texture: torch.Tensor
    palette: torch.Tensor
    history: list[dict] = field(default_factory=list)

    @property
    def final_success(self) -> float:
        return self.history[-1]["success"] if self.history else float("nan")


@dataclass(kw_only=True)
class TextureSettings:
    """The optimiser's settings, as every texture attack takes them (keyword-only, beside its
    own): ``steps``, ``lr`` (Adam's step on the logits), ``batch`` views per step, the NPS and TV
    weights, the printer ``palette``, ``texture_res`` (cells across; None: every texel) and the
    ``schedule``. An attack inherits them and calls :meth:`optimiser`."""

    steps: int = 300
    lr: float = 0.3
    batch: int = 4
    nps_weight: float = 0.01
    tv_weight: float = 2.5
    palette: str = "printer30"
    texture_res: int | None = None
    schedule: Literal["constant", "cosine"] = "constant"

    def optimiser(self, keep: Literal["last", "best"] = "last") -> TextureOptimiser:
        """The optimiser these settings describe (checked: a bad one raises ConfigError)."""
        settings = {f.name: getattr(self, f.name) for f in fields(TextureSettings)}
        return TextureOptimiser(**settings, keep=keep)

    def optimise_views(
        self: TextureAttack,
        views: list[Any],
        init: torch.Tensor,
        mask: torch.Tensor,
        eot: Any,
        generator: torch.Generator,
        on_step: OnStep | None = None,
    ) -> Optimised:
        """Optimise from ``init`` with the attack's own ``objective`` on batches of ``views``,
        its ``victims`` held still (for an attack that is a :class:`TextureAttack`)."""

        def objective(idx: list[int], texture: torch.Tensor, step: int):
            return self.objective([views[i] for i in idx], texture, mask, eot, step)

        optimise = self.optimiser()
        with frozen(*self.victims()):
            return optimise(init, len(views), objective, generator, mask, on_step)


@dataclass(kw_only=True)
class TextureOptimiser(TextureSettings):
    keep: Literal["last", "best"] = "last"

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"unknown schedule {self.schedule!r}", field="schedule", allowed="constant, cosine"
            )
        if self.texture_res is not None and self.texture_res < 2:
            raise ConfigError(
                f"texture_res must be at least 2, got {self.texture_res}", field="texture_res"
            )
        if self.steps < 0 or self.batch < 1 or self.lr <= 0:
            raise ConfigError(
                f"steps >= 0, batch >= 1 and lr > 0 are needed, got steps={self.steps}, "
                f"batch={self.batch}, lr={self.lr}",
                field="steps",
            )

    @torch.enable_grad()  # optimises even when called under no_grad
    def __call__(
        self,
        init: torch.Tensor,
        num_views: int,
        objective: Objective,
        generator: torch.Generator,
        mask: torch.Tensor | None = None,
        on_step: OnStep | None = None,
    ) -> Optimised:
        """Optimise from ``init`` (``[3, h, w]`` in [0, 1]) over ``num_views`` training views,
        drawn with ``generator``; ``mask`` (``[1, h, w]``) limits the NPS and TV terms."""
        palette = load_palette(self.palette)
        grid = coarse_grid(init, self.texture_res)
        param = torch.logit(grid.down(init).clamp(0.02, 0.98)).requires_grad_(True)
        opt = torch.optim.Adam([param], lr=self.lr)
        sched = (
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, self.steps))
            if self.schedule == "cosine"
            else None
        )
        history: list[dict] = []
        best, best_loss = init.clamp(0, 1), float("inf")
        for step in range(self.steps):
            idx = torch.randperm(num_views, generator=generator)[: self.batch].tolist()
            texture = grid.up(torch.sigmoid(param))
            adversarial, met = objective(idx, texture, step)
            loss = (
                adversarial
                + self.nps_weight * nps(texture, palette, mask)
                + self.tv_weight * total_variation(texture, mask)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            rate = float(met.float().mean())
            history.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    "adversarial": float(adversarial.detach()),
                    "success": rate,
                }
            )
            if self.keep == "best" and step >= SMOOTHING - 1:
                recent = [h["adversarial"] for h in history[-SMOOTHING:]]
                if sum(recent) / len(recent) < best_loss:
                    best_loss, best = sum(recent) / len(recent), texture.detach().clone()
            if on_step:
                on_step(step, history[-1]["loss"], rate)
        last = grid.up(torch.sigmoid(param)).detach()
        return Optimised(best if self.keep == "best" else last, palette, history)
