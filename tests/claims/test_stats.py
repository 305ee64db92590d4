"""Seed statistics: hand-computed values, the undefined CI of one seed, and the t table fallback."""

from __future__ import annotations

import math

import pytest
from scipy.stats import t as student_t

from optrepro.claims.stats import (
    T975_TABLE,
    seed_stats,
    t975_from_table,
    welch_difference,
)


def test_three_seeds_match_a_hand_computation():
    stats = seed_stats([1.0, 2.0, 3.0])
    # mean 2, sample std 1, 95% CI half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 / 1.7321
    assert (stats.n, stats.mean, stats.std) == (3, 2.0, 1.0)
    assert stats.ci95 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)


@pytest.mark.parametrize("values", [[2.5], []])
def test_ci_is_undefined_below_two_seeds(values):
    stats = seed_stats(values)
    assert stats.n == len(values)
    assert math.isnan(stats.std) and math.isnan(stats.ci95)


def test_welch_difference_matches_a_hand_computation():
    a, b = seed_stats([1.0, 2.0, 3.0]), seed_stats([4.0, 6.0, 8.0])
    diff = welch_difference(b, a)
    va, vb = 1 / 3, 4 / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert diff.value == 4.0
    assert diff.df == pytest.approx(df)
    assert diff.ci95 == pytest.approx(student_t.ppf(0.975, df) * math.sqrt(va + vb))


def test_welch_difference_with_one_seed_has_no_ci():
    diff = welch_difference(seed_stats([1.0]), seed_stats([2.0, 3.0]))
    assert diff.value == -1.5 and math.isnan(diff.ci95)


@pytest.mark.parametrize("df", sorted(T975_TABLE))
def test_table_fallback_agrees_with_scipy(df):
    assert t975_from_table(df) == pytest.approx(student_t.ppf(0.975, df), abs=2e-3)


def test_table_fallback_is_conservative_between_entries():
    assert t975_from_table(22) == T975_TABLE[20] > student_t.ppf(0.975, 22)
    assert t975_from_table(1000) == pytest.approx(1.96)
