"""Exact tests for orderings the t interval cannot decide (`check: {kind: ordering, exact: sign | boschloo}`).

- `sign`: the exact paired sign test over seeds (arms that share each seed's initial weights and batch order).
  Each seed's gain beyond the margin is a win or a loss (ties are dropped); with w wins of n, the one-sided
  p = P(Binomial(n, 1/2) >= w). Arms constant over the seeds, where the t statistic is 0/0, are decided here.
  The smallest p is 2^-n: a claim needs 6 untied seeds on one side to reach p <= 0.025.
- `boschloo`: Boschloo's exact unconditional test (Boschloo 1970) of two success rates, for a 0/1 metric (a seed
  solved the task or not); uniformly at least as powerful as Fisher's. 3/3 vs 0/3 gives p = 0.0156.

Both use one-sided 0.025, the error rate of the fixed rule's two-sided 95% CI, so a false "reproduced" is as rare
under every test. Decided: p <= 0.025 for `better` (reproduced) or for `than` (not reproduced).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import bdtrc  # P(X > k) of a binomial, without importing scipy.stats (slow)

ONE_SIDED_ALPHA = 0.025


@dataclass(frozen=True)
class ExactResult:
    """A one-sided p for each direction and the words that say how it was found."""

    p_better: float
    p_worse: float
    test: str


def sign_test(gains: list[float]) -> ExactResult:
    """Per-seed gains beyond the margin (positive: `better` wins that seed)."""
    wins, losses = sum(g > 0 for g in gains), sum(g < 0 for g in gains)
    n = wins + losses
    p_better = float(bdtrc(wins - 1, n, 0.5)) if n else 1.0
    p_worse = float(bdtrc(losses - 1, n, 0.5)) if n else 1.0
    ties = len(gains) - n
    return ExactResult(
        p_better,
        p_worse,
        f"exact sign test: {wins} of {n} untied seeds favour the claim" + (f" ({ties} tied)" if ties else ""),
    )


def boschloo_test(better: list[float], than: list[float]) -> ExactResult:
    """Success counts of two arms (each seed 1 or 0)."""
    if any(v not in (0.0, 1.0) for v in [*better, *than]):
        raise ValueError("the Boschloo test needs a 0/1 metric (each seed succeeded or not)")
    wins_b, wins_t = int(sum(better)), int(sum(than))
    table = [[wins_b, wins_t], [len(better) - wins_b, len(than) - wins_t]]
    from scipy.stats import boschloo_exact

    p_better = float(boschloo_exact(table, alternative="greater").pvalue)
    p_worse = float(boschloo_exact(table, alternative="less").pvalue)
    return ExactResult(
        p_better, p_worse, f"Boschloo's exact test: {wins_b}/{len(better)} vs {wins_t}/{len(than)} successes"
    )


def seeds_for_sign_test() -> int:
    """Untied seeds all on one side that the sign test needs to decide at one-sided 0.025."""
    return math.ceil(math.log2(1 / ONE_SIDED_ALPHA))
