"""Seed statistics for claims: mean, std, n, 95% CI (Student t) and Welch CIs for differences.

Paper claims are made from a handful of seeds, so the normal approximation is wrong here: the t
quantile for n=3 is 4.30, not 1.96. With one seed there is no spread and the CI is undefined
(NaN), shown as such rather than as a fake zero-width interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Two-sided 95% Student t quantiles t_{0.975, df}; used when scipy is not installed.
T975_TABLE = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
    18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}
NORMAL_975 = 1.960


def t975_from_table(df: float) -> float:
    """t_{0.975, df} from T975_TABLE; between entries the next smaller df (a conservative quantile)."""
    if df < 1:
        return math.nan
    usable = [d for d in T975_TABLE if d <= df]
    return T975_TABLE[max(usable)] if df <= max(T975_TABLE) else NORMAL_975


def t975(df: float) -> float:
    """The two-sided 95% t quantile for `df` degrees of freedom (NaN when df < 1)."""
    if not df >= 1:
        return math.nan
    try:
        from scipy.stats import t as student_t
    except ImportError:
        return t975_from_table(df)
    return float(student_t.ppf(0.975, df))


@dataclass(frozen=True)
class SeedStats:
    """Summary of one arm's finite seed values; `ci95` is the half-width of the 95% CI of the mean."""

    n: int
    mean: float
    std: float
    ci95: float


def seed_stats(values: Sequence[float]) -> SeedStats:
    """mean, sample std (ddof=1), n and t-based 95% CI half-width; std and CI are NaN for n < 2."""
    n = len(values)
    if n == 0:
        return SeedStats(0, math.nan, math.nan, math.nan)
    mean = math.fsum(values) / n
    if n == 1:
        return SeedStats(1, mean, math.nan, math.nan)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return SeedStats(n, mean, std, t975(n - 1) * std / math.sqrt(n))


@dataclass(frozen=True)
class Difference:
    """a - b with its Welch 95% CI half-width (NaN when either side has fewer than 2 seeds)."""

    value: float
    ci95: float
    df: float


def welch_difference(a: SeedStats, b: SeedStats) -> Difference:
    """Difference of means a - b; Welch-Satterthwaite degrees of freedom for unequal variances."""
    value = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(value, math.nan, math.nan)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    total = va + vb
    if total == 0:
        return Difference(value, 0.0, math.inf)
    df = total**2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return Difference(value, t975(df) * math.sqrt(total), df)
