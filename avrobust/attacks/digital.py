"""Digital baselines on images (not physical): FGSM and PGD under L-infinity or L2 budgets,
targeted or untargeted, against any differentiable classifier of ``[B, 3, H, W]`` images in
[0, 1]. Adversarial training reuses them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from avrobust.attacks.frozen import frozen
from avrobust.core.errors import ConfigError


def _step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    flat = grad.flatten(1).norm(dim=1).clamp(min=1e-12)
    return grad / flat.view(-1, *([1] * (grad.dim() - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp(min=1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


@dataclass
class PGD:
    """Projected gradient descent (Madry et al. 2018); ``steps=1, alpha=eps, random_start=False``
    is FGSM.

    Attributes: eps (budget in [0, 1] pixel units, L-inf or L2), alpha (step), steps,
    norm (``linf`` or ``l2``), random_start, targeted.
    """

    model: nn.Module
    eps: float = 8 / 255
    alpha: float = 2 / 255
    steps: int = 10
    norm: str = "linf"
    random_start: bool = True
    targeted: bool = False

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"norm must be linf or l2, got {self.norm!r}", field="norm")
        if self.eps < 0 or self.alpha <= 0 or self.steps < 1:
            raise ConfigError("eps >= 0, alpha > 0 and steps >= 1 are needed", field="pgd")

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Adversarial images within the budget around ``images``. ``labels`` are the true
        classes (untargeted) or the targets (targeted)."""
        # Eval mode, no weight gradients, the model given back as it was; runs under no_grad too.
        with frozen(self.model), torch.enable_grad():
            return self._attack(images.detach(), labels, generator)

    def _attack(self, x0: torch.Tensor, labels: torch.Tensor, generator) -> torch.Tensor:
        delta = torch.zeros_like(x0)
        if self.random_start:
            noise = torch.rand(x0.shape, generator=generator, device=x0.device) * 2 - 1
            delta = _project(noise * self.eps, self.eps, self.norm)
        delta = ((x0 + delta).clamp(0, 1) - x0).requires_grad_(True)
        for _ in range(self.steps):
            loss = F.cross_entropy(self.model(x0 + delta), labels)
            (grad,) = torch.autograd.grad(loss, delta)
            direction = -1.0 if self.targeted else 1.0
            with torch.no_grad():
                delta += direction * self.alpha * _step(grad, self.norm)
                delta.copy_(_project(delta, self.eps, self.norm))
                delta.copy_((x0 + delta).clamp(0, 1) - x0)
        return (x0 + delta).detach()


def fgsm(model: nn.Module, eps: float = 8 / 255, norm: str = "linf", targeted: bool = False) -> PGD:
    """The fast gradient sign method as a one-step PGD."""
    return PGD(model, eps, eps, 1, norm, random_start=False, targeted=targeted)


@dataclass
class AutoAttack:
    """AutoAttack (Croce and Hein 2020) as RobustBench reports robust accuracy: the
    ``standard`` ensemble of APGD-CE, APGD-T, FAB-T and Square, each run on the inputs the
    previous ones left correct; through torchattacks (installed by ``make install``). Untargeted
    only: a sample counts as broken when any of the four flips it.

    Attributes: eps (budget in [0, 1] pixel units), norm (``linf`` or ``l2``), n_classes,
    version (``standard``, or ``rand`` for randomised defences), seed.
    """

    model: nn.Module
    eps: float = 8 / 255
    norm: str = "linf"
    n_classes: int = 10
    version: str = "standard"
    seed: int = 0
    targeted: bool = False  # for run_digital_attack's check; AutoAttack here is untargeted

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise ConfigError(f"norm must be linf or l2, got {self.norm!r}", field="norm")
        if self.eps <= 0:
            raise ConfigError("AutoAttack needs eps > 0", field="eps")

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Adversarial images within the budget around ``images`` (``generator`` is unused:
        AutoAttack seeds itself from ``seed``)."""
        try:
            import torchattacks
        except ImportError:
            raise ConfigError(
                "AutoAttack needs torchattacks: pip install --no-deps torchattacks==3.5.1 "
                "(make install does it)",
                field="method",
            ) from None
        with frozen(self.model), torch.enable_grad():
            attack = torchattacks.AutoAttack(
                self.model,
                norm="Linf" if self.norm == "linf" else "L2",
                eps=self.eps,
                version=self.version,
                n_classes=self.n_classes,
                seed=self.seed,
            )
            return attack(images.detach(), labels).detach()
