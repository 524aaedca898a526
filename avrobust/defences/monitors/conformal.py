"""Monitor thresholds set on a held-out clean calibration split, each with the guarantee it
carries on fresh clean inputs drawn like the calibration split (exchangeable with it):

* :func:`coverage_threshold` (split conformal, Vovk et al.; Angelopoulos and Bates 2021): a
  fresh clean input passes (is not flagged) with probability at least ``coverage``, so clean
  false alarms stay at or below ``1 - coverage`` on average over calibration splits;
* :func:`selective_risk_threshold` (learn-then-test, Angelopoulos et al. 2021, with fixed
  sequence testing): with probability at least ``1 - delta`` over the calibration split, the
  classifier's error rate on the inputs the monitor passes is at most ``risk`` (the selective
  risk of Geifman and El-Yaniv 2017, who bound it with a union over a binary search; fixed
  sequence testing needs no union, so it passes more).

Written on scipy's exact binomial tail rather than through mapie or torchcp: their risk
controllers bound a binary classifier's precision or a set predictor's coverage, not the
selective risk of a classifier behind a reject option, and both guarantees are a few lines."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def coverage_threshold(scores: torch.Tensor, coverage: float) -> float:
    """The smallest threshold ``t`` (flag when ``score > t``) such that a fresh clean score
    passes with probability at least ``coverage``: the ``ceil((n + 1) coverage)``-th smallest
    calibration score (infinity when the split is too small for the level)."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    s = torch.sort(scores.detach().flatten().double()).values
    k = math.ceil((s.numel() + 1) * coverage)
    return float("inf") if k > s.numel() else float(s[k - 1])


@dataclass(frozen=True)
class RiskThreshold:
    """A threshold with its selective-risk guarantee: ``threshold`` (flag above it), the
    calibration split's ``coverage`` and empirical ``risk`` there, and the guaranteed ``bound``
    at confidence ``1 - delta``; ``threshold`` is minus infinity when no threshold can be
    certified (everything flagged)."""

    threshold: float
    coverage: float
    risk: float
    bound: float
    delta: float


def _p_value(errors: int, n: int, risk: float) -> float:
    """Exact binomial p-value of "the error rate exceeds ``risk``" after ``errors`` in ``n``."""
    from scipy.stats import binom

    return float(binom.cdf(errors, n, risk)) if n else 1.0


def selective_risk_threshold(
    scores: torch.Tensor,
    errors: torch.Tensor,
    risk: float,
    delta: float = 0.05,
    min_coverage: float = 0.5,
) -> RiskThreshold:
    """The loosest threshold whose selective risk is certified at most ``risk`` with
    confidence ``1 - delta``. Candidates are the calibration scores in increasing order from
    the one that passes ``min_coverage`` of the split (a stricter start passes too few inputs
    for a binomial test to reject anything); each is tested in turn (H0: its selective risk
    exceeds ``risk``, exact binomial given the passed count) and the walk stops at the first
    it cannot reject; the last rejected one is returned. Fixed sequence testing controls the
    family-wise error at ``delta`` with no correction, whatever the order, which was fixed
    before looking at the errors."""
    if not (0 < risk < 1 and 0 < delta < 1 and 0 < min_coverage <= 1):
        raise ValueError("risk, delta and min_coverage must be in (0, 1)")
    order = torch.argsort(scores.detach().flatten().double(), stable=True)
    s = scores.detach().flatten().double()[order]
    cum = torch.cumsum(errors.detach().flatten().to(torch.int64)[order], 0)
    n = s.numel()
    best = RiskThreshold(float("-inf"), 0.0, 0.0, 0.0, delta)
    for i in range(max(0, math.ceil(min_coverage * n) - 1), n):
        # Ties: a threshold passes every score equal to it, so test only at a tie's last one.
        if i + 1 < n and s[i + 1] == s[i]:
            continue
        passed, wrong = i + 1, int(cum[i])
        if _p_value(wrong, passed, risk) > delta:
            break
        best = RiskThreshold(
            float(s[i]), passed / n, wrong / passed, _bound(wrong, passed, delta), delta
        )
    return best


def _bound(errors: int, n: int, delta: float) -> float:
    """One-sided Clopper-Pearson upper bound on an error rate at confidence ``1 - delta``."""
    from scipy.stats import beta

    return 1.0 if errors >= n else float(beta.ppf(1 - delta, errors + 1, n - errors))
