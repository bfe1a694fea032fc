"""A/B statistics with known answers: a variant that truly converts 20% better is declared
the winner with an interval holding the truth; A/A tests stay "no difference" at the
stated error rate; a sample ratio mismatch stops the test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recsvc.analytics.abtest import (
    ALPHA,
    bootstrap_means,
    mde_proportions,
    sample_ratio,
    two_proportions,
    verdict,
)

FAIR = {"A": 0.5, "B": 0.5}


def test_a_truly_better_variant_wins_with_an_interval_holding_the_truth() -> None:
    rng = np.random.default_rng(1)
    n, base = 40_000, 0.05
    x_a = int(rng.binomial(n, base))
    x_b = int(rng.binomial(n, base * 1.2))  # converts 20% better
    result = two_proportions("conversion", x_a, n, x_b, n)
    assert verdict(result, sample_ratio({"A": n, "B": n}, FAIR)) == "B wins"
    assert result.ci_low < base * 0.2 < result.ci_high  # the true difference, 0.01
    assert result.p_value < 1e-6 and 0.1 < result.relative < 0.3


def test_the_interval_covers_the_truth_as_often_as_it_says() -> None:
    rng = np.random.default_rng(2)
    truth, covered, runs = 0.01, 0, 400
    for _ in range(runs):
        x_a, x_b = rng.binomial(5_000, 0.05), rng.binomial(5_000, 0.06)
        result = two_proportions("conversion", int(x_a), 5_000, int(x_b), 5_000)
        covered += result.ci_low <= truth <= result.ci_high
    # 95% intervals: the count of hits is Binomial(400, 0.95); 99.9% of runs fall here.
    low, high = stats.binom.ppf([0.0005, 0.9995], runs, 1 - ALPHA)
    assert low <= covered <= high


def test_a_and_a_stay_no_difference_at_the_stated_error_rate() -> None:
    rng = np.random.default_rng(3)
    runs = 600
    false_wins = sum(
        verdict(two_proportions("ctr", int(rng.binomial(3_000, 0.1)), 3_000,
                                int(rng.binomial(3_000, 0.1)), 3_000),
                sample_ratio({"A": 3_000, "B": 3_000}, FAIR)) != "no difference yet"
        for _ in range(runs))
    # Each A/A run errs with probability ALPHA: the count is Binomial(600, 0.05).
    assert false_wins <= stats.binom.ppf(0.999, runs, ALPHA)
    assert false_wins >= stats.binom.ppf(0.001, runs, ALPHA)


def test_a_sample_ratio_mismatch_stops_the_test() -> None:
    winning = two_proportions("conversion", 500, 10_000, 700, 9_000)
    skewed = sample_ratio({"A": 10_000, "B": 9_000}, FAIR)
    assert skewed.mismatch and skewed.p_value < 1e-10
    assert verdict(winning, skewed) == "stop: sample ratio mismatch"
    fine = sample_ratio({"A": 10_000, "B": 9_950}, FAIR)
    assert not fine.mismatch
    uneven = sample_ratio({"A": 9_000, "B": 1_000}, {"A": 0.9, "B": 0.1})
    assert not uneven.mismatch  # configured 90/10 and got it


def test_revenue_per_shopper_by_bootstrap() -> None:
    rng = np.random.default_rng(4)
    # Most shoppers spend nothing; spenders' baskets are log-normal; B lifts spend 15%.
    def shoppers(n: int, lift: float) -> np.ndarray:
        spend = rng.lognormal(3.5, 1.0, n) * lift
        return np.where(rng.random(n) < 0.08, spend, 0.0)

    a, b = shoppers(30_000, 1.0), shoppers(30_000, 1.15)
    result = bootstrap_means("revenue_per_shopper", a, b, seed=5)
    assert result.significant and result.diff > 0
    assert result.ci_low < b.mean() - a.mean() < result.ci_high
    same = bootstrap_means("revenue_per_shopper", a, shoppers(30_000, 1.0), seed=6)
    assert not same.significant and same.ci_low < 0 < same.ci_high


def test_the_minimum_detectable_effect_shrinks_with_the_sample() -> None:
    small, large = mde_proportions(0.05, 1_000, 1_000), mde_proportions(0.05, 100_000, 100_000)
    assert large == pytest.approx(small / 10, rel=1e-9)
    # The textbook figure: 5% base, 80% power, 5% two-sided, ~7,400 a variant for +1 point.
    assert mde_proportions(0.05, 7_460, 7_460) == pytest.approx(0.01, rel=0.02)
