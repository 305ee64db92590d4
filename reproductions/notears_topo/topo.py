"""TOPO (Deng et al., ICML 2023): search over topological orders for the NOTEARS score.

For an order pi, W(pi) is the best W whose edges go forward in pi: one (lasso) regression of each node on its
predecessors, so score(W(pi)) is the NOTEARS objective restricted to pi's DAGs. The search swaps pairs (i, j)
with i after j whose entry of the gradient of h_ldet(W) = -log det(I - |W|) is smallest (near 0: no path j ->
i, so the swap keeps W(pi) acyclic); each candidate is scored by refitting only the nodes between the two
positions. The improving swaps with disjoint position ranges are applied, best first; when none improves, a
larger candidate set is tried a limited number of times; then the search stops. The search-space sizes follow
the official linear code's automatic choice (size_small ~ 1.5 d, size_large ~ sqrt(d) (d-1) log10 d, one
large search for d >= 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reproductions.notears_topo.metrics import score as objective


def search_sizes(d: int) -> tuple[int, int, int]:
    """(size_small, size_large, large searches allowed), capped at the d(d-1)/2 swappable pairs."""
    pairs = d * (d - 1) // 2
    if d < 2:
        return 0, 0, 0
    mid = min(int(math.sqrt(d) * (d - 1) * math.log10(d)), pairs)
    small = max(1, min(int(1.5 * d), mid, pairs))
    large = min(max(int(1.5 * d), mid), pairs)
    return small, large, min(d // 10, 1)


def lasso_gram(
    gram: np.ndarray,
    target: int,
    predecessors: tuple[int, ...],
    lambda1: float,
    tol: float = 1e-10,
    max_sweeps: int = 5000,
) -> np.ndarray:
    """argmin_w 1/(2n)||x_t - X_P w||^2 + lambda1 ||w||_1 from the Gram matrix X^T X / n (coordinate descent)."""
    idx = list(predecessors)
    if not idx:
        return np.zeros(0)
    sub = gram[np.ix_(idx, idx)]
    cross = gram[idx, target]
    if lambda1 == 0:
        return np.linalg.lstsq(sub, cross, rcond=None)[0]
    w = np.zeros(len(idx))
    diag = np.diag(sub).copy()
    for _ in range(max_sweeps):
        largest = 0.0
        for k in range(len(idx)):
            if diag[k] <= 0:
                continue
            rho_k = cross[k] - sub[k] @ w + diag[k] * w[k]
            new = np.sign(rho_k) * max(abs(rho_k) - lambda1, 0.0) / diag[k]
            largest = max(largest, abs(new - w[k]))
            w[k] = new
        if largest < tol:
            break
    return w


@dataclass
class TopoResult:
    weights: np.ndarray
    order: list[int]
    score: float
    start_score: float
    iterations: int
    large_searches: int
    scores: list[float] = field(default_factory=list)


class TopoSearch:
    """The bi-level search for one data set; columns fitted for (node, predecessor set) are cached."""

    def __init__(self, x: np.ndarray, lambda1: float) -> None:
        self.x = x - x.mean(axis=0, keepdims=True)
        self.n, self.d = self.x.shape
        self.gram = self.x.T @ self.x / self.n
        self.lambda1 = float(lambda1)
        self._cache: dict[tuple[int, frozenset], np.ndarray] = {}

    def column(self, node: int, predecessors: list[int]) -> np.ndarray:
        key = (node, frozenset(predecessors))
        if key not in self._cache:
            preds = tuple(sorted(predecessors))
            col = np.zeros(self.d)
            col[list(preds)] = lasso_gram(self.gram, node, preds, self.lambda1)
            self._cache[key] = col
        return self._cache[key]

    def fit_order(self, order: list[int]) -> np.ndarray:
        weights = np.zeros((self.d, self.d))
        for pos, node in enumerate(order):
            weights[:, node] = self.column(node, order[:pos])
        return weights

    def score(self, weights: np.ndarray) -> float:
        return objective(self.x, weights, self.lambda1)

    @staticmethod
    def swapped(order: list[int], i: int, j: int) -> list[int]:
        new = list(order)
        a, b = new.index(i), new.index(j)
        new[a], new[b] = j, i
        return new

    def candidate(self, weights: np.ndarray, order: list[int], pair: tuple[int, int]) -> np.ndarray:
        """W of the order with i and j swapped: only the nodes between their positions get new predecessors."""
        i, j = pair
        lo, hi = order.index(j), order.index(i)
        new_order = self.swapped(order, i, j)
        new = weights.copy()
        for pos in range(lo, hi + 1):
            node = new_order[pos]
            new[:, node] = self.column(node, new_order[:pos])
        return new

    def candidates(self, weights: np.ndarray, order: list[int], size: int) -> list[tuple[int, int]]:
        """Backward pairs (i after j) whose gradient of h_ldet at W is among the `size` smallest (ties kept)."""
        position = np.empty(self.d, dtype=int)
        position[order] = np.arange(self.d)
        backward = position[:, None] > position[None, :]  # i after j: edge i -> j not allowed now
        grad_h = np.linalg.inv(np.eye(self.d) - np.abs(weights)).T
        values = np.sort(grad_h[backward])
        threshold = values[size - 1]
        rows, cols = np.nonzero(backward & (grad_h <= threshold))
        return [(int(i), int(j)) for i, j in zip(rows, cols)]

    def apply_greedy(
        self, order: list[int], pairs: list[tuple[int, int]], scores: np.ndarray, current: float
    ) -> list[int]:
        """Apply the improving swaps best first, skipping any whose position range overlaps one applied."""
        taken = np.zeros(self.d, dtype=bool)
        positions = {node: pos for pos, node in enumerate(order)}
        new_order = list(order)
        for k in np.argsort(scores, kind="stable"):
            if not scores[k] < current:
                break
            i, j = pairs[k]
            lo, hi = positions[j], positions[i]
            if taken[lo : hi + 1].any():
                continue
            taken[lo : hi + 1] = True
            new_order = self.swapped(new_order, i, j)
        return new_order

    def run(self, order: list[int], max_iterations: int | None = None, tol: float = 1e-12) -> TopoResult:
        order = [int(v) for v in order]
        if sorted(order) != list(range(self.d)):
            raise ValueError(f"TOPO needs a permutation of 0..{self.d - 1}, got {order}")
        size_small, size_large, large_allowed = search_sizes(self.d)
        max_iterations = max_iterations or 10 * self.d * self.d
        weights = self.fit_order(order)
        current = self.score(weights)
        start, history, large_used, iterations = current, [current], 0, 0
        while size_small and iterations < max_iterations:
            small = self.candidates(weights, order, size_small)
            scores = np.array([self.score(self.candidate(weights, order, p)) for p in small])
            pairs = small
            if not (scores < current - tol).any():
                if large_used >= large_allowed:
                    break
                small_set = set(small)
                pairs = [p for p in self.candidates(weights, order, size_large) if p not in small_set]
                scores = np.array([self.score(self.candidate(weights, order, p)) for p in pairs])
                if not len(pairs) or not (scores < current - tol).any():
                    break
                large_used += 1
            order = self.apply_greedy(order, pairs, scores, current - tol)
            weights = self.fit_order(order)
            current = self.score(weights)
            history.append(current)
            iterations += 1
        return TopoResult(
            weights=weights,
            order=order,
            score=current,
            start_score=start,
            iterations=iterations,
            large_searches=large_used,
            scores=history,
        )


def topo_linear(x: np.ndarray, lambda1: float, order: list[int]) -> TopoResult:
    return TopoSearch(x, lambda1).run(order)
