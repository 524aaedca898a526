"""How a monitor is ranked: by the wrong predictions it removes (selective classification,
Geifman and El-Yaniv 2017; Guerin et al. 2023 argue monitors must be judged so), and by how
well it separates a shift from clean inputs (AUROC, FPR at 95% TPR, the OOD literature's).

Scores: higher means more doubtful; a monitor passes an input when its score is at most the
threshold. ``errors``: 1 where the classifier is wrong on the input."""

from __future__ import annotations

import torch

from avrobust.core.stats import Rate, rate


def risk_coverage(scores: torch.Tensor, errors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(coverage, risk)`` ``[N]`` each: passing the ``k`` least doubted inputs, the share
    passed and the error rate among them (ties broken by input order)."""
    order = torch.argsort(scores.detach().flatten().double(), stable=True)
    e = errors.detach().flatten().double()[order]
    k = torch.arange(1, e.numel() + 1, dtype=torch.float64)
    return k / e.numel(), torch.cumsum(e, 0) / k


def aurc(scores: torch.Tensor, errors: torch.Tensor) -> float:
    """Area under the risk-coverage curve: the mean selective risk over all coverages (lower is
    better; a perfect monitor of a classifier with error rate r gets about r^2 / 2)."""
    return float(risk_coverage(scores, errors)[1].mean())


def selective_risk(scores: torch.Tensor, errors: torch.Tensor, coverage: float) -> float:
    """The error rate among the ``ceil(coverage N)`` least doubted inputs."""
    cov, risk = risk_coverage(scores, errors)
    i = int(torch.searchsorted(cov, torch.tensor(coverage - 1e-12, dtype=torch.float64)))
    return float(risk[min(i, risk.numel() - 1)])


def auroc(clean: torch.Tensor, shifted: torch.Tensor) -> float:
    """Probability that a shifted input is doubted more than a clean one (ties count half).
    scikit-learn's, on the raw scores: torchmetrics would squash scores outside [0, 1] through
    a sigmoid first, which ties every large distance."""
    from sklearn.metrics import roc_auc_score

    s = torch.cat([clean.detach().flatten(), shifted.detach().flatten()]).double().numpy()
    y = [0] * clean.numel() + [1] * shifted.numel()
    return float(roc_auc_score(y, s))


def fpr_at_tpr(clean: torch.Tensor, shifted: torch.Tensor, tpr: float = 0.95) -> float:
    """Share of clean inputs flagged at the threshold that flags ``tpr`` of the shifted ones."""
    t = torch.quantile(shifted.flatten().double(), 1 - tpr)
    return float((clean.flatten().double() >= t).double().mean())


def flagged(scores: torch.Tensor, threshold: float) -> Rate:
    """The share of ``scores`` above ``threshold``, with its 95% Wilson interval."""
    return rate(int((scores.flatten() > threshold).sum()), scores.numel())
