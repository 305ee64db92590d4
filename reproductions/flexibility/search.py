"""The search for the effective model complexity: the largest n with fits(n), by doubling then bisection.

EMC (Nakkiran et al. 2021; Shwartz-Ziv et al. 2024 with the threshold 0: 100% training accuracy) is the largest
training-set size the whole training procedure fits. Assuming fitting is monotone in n, a doubling phase brackets
the failure point [largest fitted, smallest not fitted] and bisection narrows it until the gap is at most
max(min_gap, rel_tol x largest fitted). Every n is tried once (fits is called at most once per n).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SearchResult:
    emc: int  # the largest n that was fitted (0: not even the smallest)
    first_unfitted: int | None  # the smallest n tried above it that was not fitted (None: capped at the limit)
    trials: list[tuple[int, bool]] = field(default_factory=list)  # (n, fitted) in the order tried

    @property
    def capped(self) -> bool:
        return self.first_unfitted is None


def largest_fitted(
    fits: Callable[[int], bool], *, start: int, limit: int, rel_tol: float = 0.05, min_gap: int = 1
) -> SearchResult:
    if not 1 <= start <= limit:
        raise ValueError(f"the search needs 1 <= start <= limit, got start={start}, limit={limit}")
    trials: list[tuple[int, bool]] = []

    def tried(n: int) -> bool:
        fitted = bool(fits(n))
        trials.append((n, fitted))
        return fitted

    n = start
    if tried(n):
        low, high = n, None
        while high is None and low < limit:
            n = min(2 * low, limit)
            if tried(n):
                low = n
            else:
                high = n
        if high is None:
            return SearchResult(low, None, trials)
    else:
        low, high = 0, n
        while high > 1 and low == 0:
            n = high // 2
            if tried(n):
                low = n
            else:
                high = n
        if low == 0:
            return SearchResult(0, high, trials)
    while high - low > max(min_gap, rel_tol * low):
        n = (low + high) // 2
        if tried(n):
            low = n
        else:
            high = n
    return SearchResult(low, high, trials)
