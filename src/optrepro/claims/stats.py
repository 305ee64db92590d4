"""Seed statistics for claims: mean, std, n, 95% CI (Student t), Welch and paired CIs for differences, and the
seeds a power estimate says a difference needs.

Paper claims are made from a handful of seeds, so the normal approximation is wrong here: the t
quantile for n=3 is 4.30, not 1.96. With one seed there is no spread and the CI is undefined
(NaN), shown as such rather than as a fake zero-width interval.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Critical = Callable[[float], float]  # degrees of freedom -> the t multiplier of a two-sided interval
# Two-sided 95% Student t quantiles t_{0.975, df}; used when scipy is not installed.
T975_TABLE = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}
NORMAL_975 = 1.960


def t975_from_table(df: float) -> float:
    """t_{0.975, df} from T975_TABLE; between entries the next smaller df (a conservative quantile)."""
    if df < 1:
        return math.nan
    usable = [d for d in T975_TABLE if d <= df]
    return T975_TABLE[max(usable)] if df <= max(T975_TABLE) else NORMAL_975


@functools.lru_cache(maxsize=None)
def t975(df: float) -> float:
    """The two-sided 95% t quantile for `df` degrees of freedom (NaN when df < 1)."""
    if not df >= 1:
        return math.nan
    try:
        from scipy.special import stdtrit  # the t quantile without importing scipy.stats (slow)
    except ImportError:
        return t975_from_table(df)
    return float(stdtrit(df, 0.975))


@functools.lru_cache(maxsize=None)
def t_quantile(q: float, df: float) -> float:
    """The one-sided t quantile t_{q, df} (scipy; the 0.975 quantile falls back to the table without it)."""
    if q == 0.975:
        return t975(df)
    from scipy.special import stdtrit

    return float(stdtrit(df, q)) if df >= 1 else math.nan


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


def welch_difference(a: SeedStats, b: SeedStats, critical: Critical = t975) -> Difference:
    """Difference of means a - b; Welch-Satterthwaite degrees of freedom for unequal variances. `critical` (df ->
    the CI's t multiplier) is the 95% quantile unless a sequential look asks for its own."""
    value = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Difference(value, math.nan, math.nan)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    total = va + vb
    if total == 0:
        return Difference(value, 0.0, math.inf)
    df = total**2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return Difference(value, critical(df) * math.sqrt(total), df)


def paired_difference(differences: Sequence[float], critical: Critical = t975) -> Difference:
    """Mean of per-seed differences a_s - b_s with its t CI (df = pairs - 1): the seed's shared start cancels."""
    stats = seed_stats(differences)
    if stats.n < 2:
        return Difference(stats.mean, math.nan, math.nan)
    return Difference(stats.mean, critical(stats.n - 1) * stats.std / math.sqrt(stats.n), float(stats.n - 1))


def mean_interval(stats: SeedStats, critical: Critical = t975) -> tuple[float, float]:
    """(low, high) of the t interval of one arm's mean (NaN with fewer than 2 seeds)."""
    half = critical(stats.n - 1) * stats.std / math.sqrt(stats.n) if stats.n >= 2 else math.nan
    return stats.mean - half, stats.mean + half


MAX_SEEDS = 100  # beyond this a power estimate is reported as "more than 100": the effect is too small to chase


def seeds_needed(gap: float, spread: float, *, paired: bool, power: float = 0.8) -> int | None:
    """Seeds per arm for a 95% CI to clear a margin `gap` away from the observed difference with probability `power`.

    `spread` is the std of the per-seed differences (paired) or sqrt(std_a^2 + std_b^2) (unpaired); the standard
    error with n seeds is spread / sqrt(n). Smallest n with (t_{0.975} + t_{power}) * SE <= |gap|, degrees of
    freedom n - 1 (paired) or 2n - 2 (unpaired). None when the spread is unknown; MAX_SEEDS + 1 when out of reach.
    """
    if not (math.isfinite(spread) and math.isfinite(gap)):
        return None
    if spread == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        df = n - 1 if paired else 2 * n - 2
        if (t975(df) + t_quantile(power, df)) * spread / math.sqrt(n) <= abs(gap):
            return n
    return MAX_SEEDS + 1
