"""A/B statistics a statistician would accept, for the report and the dashboard: the
difference between two variants with its confidence interval and p-value, the
sample-ratio-mismatch check, the minimum detectable effect for the sample so far, and a
verdict.

- Rates (click-through, conversion): the two-proportion z-test (pooled variance for the
  p-value, unpooled for the interval).
- Means per shopper (revenue, orders): a bootstrap over shoppers, so that a few big
  spenders do not pass for a normal distribution.
- Sample ratio mismatch: a chi-square test of the shoppers each variant got against the
  configured shares. With a mismatch, nothing else can be trusted: the verdict is "stop".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8
SRM_ALPHA = 0.001  # a mismatch is an alarm, not an estimate: only a very small p counts


@dataclass(frozen=True)
class Comparison:
    """Variant B against A for one metric."""

    metric: str
    a: float  # each variant's estimate (a rate, or a mean per shopper)
    b: float
    diff: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float
    relative: float | None  # diff / a
    mde: float | None  # smallest |diff| this sample detects with POWER at ALPHA
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_proportions(metric: str, x_a: int, n_a: int, x_b: int, n_b: int,
                    alpha: float = ALPHA) -> Comparison:
    """Successes `x` out of `n` in each variant."""
    if min(n_a, n_b) <= 0:
        raise ValueError(f"{metric}: a variant with no trials")
    p_a, p_b = x_a / n_a, x_b / n_b
    diff = p_b - p_a
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = 1.0 if se_pooled == 0 else float(2 * stats.norm.sf(abs(diff) / se_pooled))
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return Comparison(metric, p_a, p_b, diff, diff - z * se, diff + z * se, p_value,
                      diff / p_a if p_a else None, mde_proportions(p_a, n_a, n_b, alpha),
                      p_value < alpha)


def mde_proportions(p_base: float, n_a: int, n_b: int, alpha: float = ALPHA,
                    power: float = POWER) -> float | None:
    """The smallest absolute difference from a base rate `p_base` that samples of these
    sizes detect with `power` (normal approximation)."""
    if p_base <= 0 or p_base >= 1:
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * math.sqrt(p_base * (1 - p_base) * (1 / n_a + 1 / n_b)))


def bootstrap_means(metric: str, a: np.ndarray, b: np.ndarray, seed: int = 0,
                    resamples: int = 2000, alpha: float = ALPHA) -> Comparison:
    """Means per shopper (one value per shopper, zeros included) compared by resampling
    shoppers with replacement; the p-value is twice the share of resampled differences
    on the other side of zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError(f"{metric}: a variant with no shoppers")
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for i in range(resamples):
        diffs[i] = (b[rng.integers(0, b.size, b.size)].mean()
                    - a[rng.integers(0, a.size, a.size)].mean())
    diff = float(b.mean() - a.mean())
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    if diff == 0:
        p_value = 1.0
    else:
        other_side = float(np.mean(diffs <= 0) if diff > 0 else np.mean(diffs >= 0))
        p_value = min(1.0, 2 * max(other_side, 1 / resamples))
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if min(a.size,
                                                                           b.size) > 1 else 0
    return Comparison(metric, float(a.mean()), float(b.mean()), diff, float(low),
                      float(high), p_value, float(diff / a.mean()) if a.mean() else None,
                      float(z * se) if se else None, p_value < alpha)


@dataclass(frozen=True)
class SampleRatio:
    observed: dict[str, int]
    expected_shares: dict[str, float]
    p_value: float
    mismatch: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sample_ratio(observed: dict[str, int], shares: dict[str, float]) -> SampleRatio:
    """Did each variant get its configured share of shoppers? (chi-square)"""
    names = sorted(shares)
    counts = np.array([observed.get(n, 0) for n in names], dtype=np.float64)
    weights = np.array([shares[n] for n in names], dtype=np.float64)
    total = counts.sum()
    if total == 0 or len(names) < 2:
        return SampleRatio(observed, shares, 1.0, False)
    expected = total * weights / weights.sum()
    p_value = float(stats.chisquare(counts, expected).pvalue)
    return SampleRatio(observed, shares, p_value, p_value < SRM_ALPHA)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment: several metrics read from one test keep a
    family-wise error rate of ALPHA, not ALPHA for each."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def verdict(comparison: Comparison, srm: SampleRatio, p_value: float | None = None,
            alpha: float = ALPHA) -> str:
    """"stop: sample ratio mismatch", "B wins", "A wins", or "no difference yet"
    (judged on `p_value` when given: an adjusted one)."""
    if srm.mismatch:
        return "stop: sample ratio mismatch"
    p = comparison.p_value if p_value is None else p_value
    if p >= alpha:
        return "no difference yet"
    return "B wins" if comparison.diff > 0 else "A wins"
