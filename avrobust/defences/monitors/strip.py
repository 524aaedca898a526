"""STRIP (Gao et al. 2019): a run-time backdoor monitor. An input is blended with clean
images; a clean input's prediction then wanders (high entropy), while an input carrying a
trigger keeps being read as the backdoor's target whatever it is blended with (low entropy).

The score is the negated mean entropy over ``blends`` fixed clean sign crops, so that, as for
every monitor here, higher means more doubtful. The blend pool is drawn once at fit time from
the judged (sign) crops with a seeded generator, so a score is reproducible; the threshold
comes, as for the other monitors, from clean calibration crops, never from triggered ones.
"""

from __future__ import annotations

import torch
from torch import nn

from avrobust.defences.monitors.classifier import _ClassifierMonitor


class Strip(_ClassifierMonitor):
    name = "strip"

    def __init__(
        self, model: nn.Module, blends: int = 16, alpha: float = 0.5, seed: int = 0
    ) -> None:
        super().__init__(model)
        self.blends, self.alpha, self.seed = blends, alpha, seed
        self.pool: torch.Tensor | None = None

    def fit(
        self, inputs: torch.Tensor, labels: torch.Tensor, judged: torch.Tensor | None = None
    ) -> Strip:
        """Keep ``blends`` of the judged clean inputs (all inputs when none is marked) as
        the blend pool."""
        candidates = inputs if judged is None or not judged.any() else inputs[judged]
        gen = torch.Generator().manual_seed(self.seed)
        pick = torch.randperm(candidates.shape[0], generator=gen)[: self.blends]
        self.pool = candidates[pick].detach().clone()
        return self

    def _score(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is None:
            raise RuntimeError("strip is not fitted (call fit first)")
        b, k = x.shape[0], self.pool.shape[0]
        pool = self.pool.to(x.device, x.dtype)
        mixed = self.alpha * x[:, None] + (1 - self.alpha) * pool[None]  # [B, K, 3, H, W]
        logp = torch.log_softmax(self.model(mixed.reshape(b * k, *x.shape[1:])), dim=1)
        entropy = -(logp.exp() * logp).sum(1).reshape(b, k).mean(1)
        return -entropy
