"""Rates with their uncertainty, and the comparisons a reviewer asks for: how sure is this
number (a binomial interval), is it more than its control (intervals that do not overlap, and
a paired test when both were measured on the same trials), and how many trials would make an
interval this narrow. The interval arithmetic is scipy's (``binomtest``); this module only
names the choices: Wilson by default (close to nominal coverage at small n), Clopper-Pearson
("exact") on request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
METHODS = ("wilson", "clopper-pearson")


def interval(
    k: int, n: int, method: str = "wilson", confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The two-sided ``confidence`` interval of a success probability after ``k`` successes in
    ``n`` trials; ``(0, 1)`` when ``n`` is 0 (nothing is known)."""
    from scipy.stats import binomtest

    if method not in METHODS:
        raise ValueError(f"unknown interval method {method!r}; known: {', '.join(METHODS)}")
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(k, n).proportion_ci(
        confidence_level=confidence, method="exact" if method == "clopper-pearson" else "wilson"
    )
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Rate:
    """``k`` successes of ``n`` trials, with a ``confidence`` interval ``[low, high]``."""

    k: int
    n: int
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def overlaps(self, other: Rate) -> bool:
        return self.low <= other.high and other.low <= self.high

    def __str__(self) -> str:
        if not self.n:
            return "0/0"
        return f"{self.k}/{self.n} {self.value:.0%} [{self.low:.0%}, {self.high:.0%}]"

    def to_dict(self) -> dict:
        return {
            "k": self.k,
            "n": self.n,
            "rate": self.value,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
        }


def rate(k: int, n: int, method: str = "wilson", confidence: float = CONFIDENCE) -> Rate:
    """:class:`Rate` of ``k`` in ``n`` with its interval."""
    return Rate(int(k), int(n), *interval(int(k), int(n), method, confidence), confidence)


def clustered_rate(clusters: Sequence[tuple[int, int]], confidence: float = CONFIDENCE) -> Rate:
    """:class:`Rate` of trials that come in correlated clusters (the frames of one drive-by):
    ``clusters`` holds ``(k_i, n_i)`` per cluster. The interval is Wilson's at the effective
    sample size ``p(1-p) / var``, with the cluster-robust (ratio-estimator) variance of the
    pooled rate, so a hundred frames of five drive-bys that each all fail or all pass count as
    about five trials, not a hundred. Clusters of one trial each give the plain binomial
    interval."""
    k = sum(c[0] for c in clusters)
    n = sum(c[1] for c in clusters)
    m = len(clusters)
    if n == 0:
        return rate(0, 0)
    if m < 2:  # one drive-by is one trial, however many frames it has
        return _wilson_eff(k, n, 1, confidence)
    if all(c[1] == 1 for c in clusters):
        return rate(k, n, confidence=confidence)
    p = k / n
    var = m / (m - 1) * sum((ki - p * ni) ** 2 for ki, ni in clusters) / n**2
    if p in (0.0, 1.0):
        n_eff = float(m)  # no spread to estimate from: count each drive-by once
    elif var == 0:
        n_eff = float(n)
    else:
        n_eff = min(float(n), p * (1 - p) / var)
    return _wilson_eff(k, n, n_eff, confidence)


def _wilson_eff(k: int, n: int, n_eff: float, confidence: float) -> Rate:
    """Wilson's interval for the rate ``k / n`` as if it came from ``n_eff`` independent
    trials (the closed form, as ``n_eff`` need not be whole)."""
    from scipy.stats import norm

    p, z = k / n, float(norm.ppf(0.5 + confidence / 2))
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / denom
    return Rate(k, n, max(0.0, centre - half), min(1.0, centre + half), confidence)


def rate_of(outcomes: Sequence[bool], method: str = "wilson") -> Rate:
    """:class:`Rate` of a list of independent trial outcomes."""
    return rate(sum(bool(o) for o in outcomes), len(outcomes), method)


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value for paired outcomes (trial i under condition ``a`` and
    under ``b``): a binomial test on the discordant pairs. 1.0 when no pair differs."""
    from scipy.stats import binomtest

    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b, strict=True))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass(frozen=True)
class Effect:
    """An attack's success beside its strongest control: the adversarial effect is the
    difference; ``distinguishable`` is False when the two intervals overlap (the report's
    "not distinguishable from its control"). ``p``: McNemar's paired p-value when the control
    ran on the same trials, else None."""

    attack: Rate
    control: str
    control_rate: Rate
    p: float | None = None

    @property
    def difference(self) -> float:
        return self.attack.value - self.control_rate.value

    @property
    def distinguishable(self) -> bool:
        return not self.attack.overlaps(self.control_rate)

    def to_dict(self) -> dict:
        return {
            "attack": self.attack.to_dict(),
            "control": self.control,
            "control_rate": self.control_rate.to_dict(),
            "difference": self.difference,
            "distinguishable": self.distinguishable,
            "p": self.p,
        }

    def __str__(self) -> str:
        mark = "" if self.distinguishable else " (not distinguishable from its control)"
        return f"{self.difference:+.0%} over {self.control} {self.control_rate}{mark}"


def strongest(
    attack: Rate,
    controls: dict[str, Rate],
    paired: dict[str, tuple[Sequence[bool], Sequence[bool]]] | None = None,
) -> Effect | None:
    """The :class:`Effect` against the control with the highest success (None without
    controls). ``paired[name] = (attack outcomes, control outcomes)`` adds McNemar's p."""
    if not controls:
        return None
    name = max(controls, key=lambda c: (controls[c].value, c))
    p = mcnemar(*paired[name]) if paired and name in paired else None
    return Effect(attack, name, controls[name], p)


def width(k: int, n: int, method: str = "wilson", confidence: float = CONFIDENCE) -> float:
    low, high = interval(k, n, method, confidence)
    return high - low


def trials_for_width(
    target: float, p: float = 0.5, method: str = "wilson", confidence: float = CONFIDENCE
) -> int:
    """The fewest independent trials whose interval around an observed rate ``p`` is at most
    ``target`` wide (``p`` = 0.5, the default, is the worst case)."""
    if not 0 < target < 1:
        raise ValueError(f"the target width must lie in (0, 1), got {target}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must lie in [0, 1], got {p}")

    def fits(n: int) -> bool:
        return width(round(p * n), n, method, confidence) <= target

    # Widths shrink roughly as 1/sqrt(n): double to a bracket, then bisect.
    hi = 1
    while not fits(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


__all__ = [
    "CONFIDENCE",
    "Effect",
    "Rate",
    "clustered_rate",
    "interval",
    "mcnemar",
    "rate",
    "rate_of",
    "strongest",
    "trials_for_width",
    "width",
]
