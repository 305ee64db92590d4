"""Pre-registered sequential seeds: group-sequential boundaries for a claim that looks at its seeds more than once.

A claim may declare `seeds: {looks: [5, 10, 20], spending: obf}` before any run. At look k (the first n_k seeds of
every arm) its verdict uses a repeated confidence interval whose level comes from Lan-DeMets alpha spending
(Lan & DeMets 1983, Biometrika 70:659-663) with information fraction t_k = n_k / n_K, so the chance of a false
decision over all looks together stays at the fixed rule's 5% (two-sided):

- `obf` (the default), O'Brien-Fleming type: alpha(t) = 2 - 2 Phi(z_{0.975} / sqrt(t)); early looks stop only on
  a large effect, the last look is close to the fixed-n test;
- `pocock`, Pocock type: alpha(t) = 0.05 ln(1 + (e - 1) t); the same boundary at every look.

The z boundary c_k solves P(|Z_1| < c_1, ..., |Z_{k-1}| < c_{k-1}, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1}) under
H0, with Z_k the score process at t_k (independent increments), integrated numerically on a grid (Jennison &
Turnbull 2000, ch. 19). Seeds give t statistics, not z: each look uses the nominal-level conversion (Pocock 1977;
Jennison & Turnbull 2000, ch. 3): p_k = 2 (1 - Phi(c_k)) and the critical value t_{1 - p_k / 2, df}. Intervals
built with these critical values are repeated confidence intervals (Jennison & Turnbull 1989): valid at whichever
look the claim stops. tests/claims/test_sequential.py checks the boundaries against published values and the false
decision rate by simulation.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri, stdtrit  # normal cdf and quantile, t quantile (scipy.stats imports slowly)

from optrepro.claims.schema import SPENDING

ALPHA = 0.05  # two-sided, as the fixed rule's 95% CI
GRID = 2001  # grid points for the score density; the boundaries agree with published ones to 3 decimals


def spent(t: float, kind: str, alpha: float = ALPHA) -> float:
    """Cumulative two-sided alpha spent by information fraction t (Lan-DeMets)."""
    if kind == "obf":
        return float(2 - 2 * ndtr(ndtri(1 - alpha / 2) / math.sqrt(t)))
    if kind == "pocock":
        return alpha * math.log(1 + (math.e - 1) * t)
    raise ValueError(f"unknown spending {kind!r}; one of {', '.join(SPENDING)}")


@functools.lru_cache(maxsize=None)
def z_boundaries(looks: tuple[int, ...], kind: str = "obf", alpha: float = ALPHA) -> tuple[float, ...]:
    """The two-sided z boundary c_k of each look (seeds per arm n_k, increasing)."""
    fractions = [n / looks[-1] for n in looks]
    cumulative = [spent(t, kind, alpha) for t in fractions]
    increments = [now - before for before, now in zip([0.0, *cumulative[:-1]], cumulative)]
    boundaries = [float(ndtri(1 - increments[0] / 2))]
    # Sub-density of the score S_1 = Z_1 sqrt(t_1) on the continuation region, on a grid.
    width = boundaries[0] * math.sqrt(fractions[0])
    grid = np.linspace(-width, width, GRID)
    density = _normal_pdf(grid / math.sqrt(fractions[0])) / math.sqrt(fractions[0])
    for k in range(1, len(looks)):
        sigma = math.sqrt(fractions[k] - fractions[k - 1])
        step = grid[1] - grid[0]
        weights = density * step * _simpson(len(grid))

        def crossing(b: float) -> float:
            return float(np.sum(weights * (ndtr((-b - grid) / sigma) + ndtr((grid - b) / sigma))))

        target = increments[k]
        scale = math.sqrt(fractions[k])
        bound = brentq(lambda b: crossing(b) - target, 1e-6, 12 * scale)
        boundaries.append(bound / scale)
        new_grid = np.linspace(-bound, bound, GRID)
        density = _normal_pdf((new_grid[:, None] - grid[None, :]) / sigma) @ weights / sigma
        grid = new_grid
    return tuple(boundaries)


def _normal_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _simpson(points: int) -> np.ndarray:
    """Simpson's rule weights (times the step) for an odd number of equally spaced points."""
    weights = np.ones(points)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights / 3.0


def nominal_levels(looks: Sequence[int], kind: str = "obf") -> tuple[float, ...]:
    """The two-sided nominal p of each look: p_k = 2 (1 - Phi(c_k))."""
    return tuple(float(2 * ndtr(-c)) for c in z_boundaries(tuple(looks), kind))


def t_critical(nominal_p: float) -> Callable[[float], float]:
    """df -> the critical t value of a look whose nominal two-sided level is `nominal_p` (the CI's multiplier)."""
    return lambda df: float(stdtrit(df, 1 - nominal_p / 2)) if df >= 1 else math.nan
