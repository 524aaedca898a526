"""Rates, intervals and paired tests against published values and planted outcomes."""

import pytest

from avrobust.core.stats import Effect, interval, mcnemar, rate, strongest, trials_for_width, width

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17:857-872, Table I: the score (Wilson) and exact (Clopper-Pearson) 95% intervals.
NEWCOMBE = [
    # k, n, wilson, clopper-pearson
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize(("k", "n", "wilson", "exact"), NEWCOMBE)
def test_intervals_match_published_values(k, n, wilson, exact):
    assert interval(k, n, "wilson") == pytest.approx(wilson, abs=1e-4)
    assert interval(k, n, "clopper-pearson") == pytest.approx(exact, abs=1e-4)


def test_rate_reads_as_count_share_and_interval():
    r = rate(34, 72)
    assert (r.k, r.n) == (34, 72) and r.low < r.value < r.high
    assert str(r) == f"34/72 47% [{r.low:.0%}, {r.high:.0%}]"
    assert rate(0, 0).to_dict()["low"] == 0.0 and rate(0, 0).high == 1.0
    with pytest.raises(ValueError):
        rate(5, 4)
    with pytest.raises(ValueError):
        interval(1, 2, "wald")


def test_mcnemar_on_planted_pairs():
    # ten discordant pairs all one way: p = 2 * 0.5**10
    a = [True] * 10 + [True] * 5 + [False] * 5
    b = [False] * 10 + [True] * 5 + [False] * 5
    assert mcnemar(a, b) == pytest.approx(2 * 0.5**10)
    # balanced discordance: no evidence of a difference
    assert mcnemar([True, False] * 5, [False, True] * 5) == pytest.approx(1.0)
    assert mcnemar([True] * 4, [True] * 4) == 1.0
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_effect_takes_the_strongest_control_and_marks_overlap():
    attack = rate(66, 72)
    controls = {"grey": rate(34, 72), "noise": rate(10, 72), "mean": rate(30, 72)}
    eff = strongest(attack, controls)
    assert eff.control == "grey" and eff.difference == pytest.approx((66 - 34) / 72)
    assert eff.distinguishable and "not distinguishable" not in str(eff)
    close = Effect(rate(36, 72), "grey", rate(34, 72))
    assert not close.distinguishable and "not distinguishable" in str(close)
    assert strongest(attack, {}) is None
    paired = {"grey": ([True] * 10, [False] * 10)}
    assert strongest(attack, controls, paired).p == pytest.approx(2 * 0.5**10)


@pytest.mark.parametrize("target", [0.1, 0.2, 0.3])
def test_trials_for_width_is_the_fewest_that_fit(target):
    n = trials_for_width(target)
    assert width(round(0.5 * n), n) <= target < width(round(0.5 * (n - 1)), n - 1)
    # the textbook approximation 4 z^2 p(1-p) / w^2 at p = 0.5 is close
    assert abs(n - 1.96**2 / target**2) <= 0.1 * n + 3
    assert trials_for_width(target, p=0.05) < n


def test_clustered_rate_counts_correlated_frames_as_fewer_trials():
    from avrobust.core.stats import clustered_rate

    # Independent trials (clusters of one) give the plain Wilson interval.
    single = clustered_rate([(1, 1)] * 30 + [(0, 1)] * 70)
    assert (single.low, single.high) == pytest.approx(interval(30, 100))
    # The same 30 of 100 frames in five drive-bys that fail or pass whole: far wider, and
    # close to what 1.5 of 5 trials would give.
    whole = clustered_rate([(20, 20), (10, 20), (0, 20), (0, 20), (0, 20)])
    assert whole.k == 30 and whole.n == 100
    assert whole.high - whole.low > 2 * (single.high - single.low)
    # Frames that vary as much within a drive-by as between them: no wider than binomial.
    mixed = clustered_rate([(6, 20)] * 5)
    assert mixed.high - mixed.low == pytest.approx(single.high - single.low, abs=1e-9)
    # Every frame failed in every drive-by: the drive-bys are the trials.
    allfail = clustered_rate([(20, 20)] * 4)
    assert allfail.high == 1.0 and allfail.low == pytest.approx(interval(4, 4)[0], abs=1e-9)
