"""One-shot pruning of a flat weight vector: global magnitude, and M-FAC's OBS pruning with the static inverse.

Both act on the vector of all prunable weights together (global, as the official ``main_prun.py``'s ``MagPruner``
and ``MFACPruner`` do [repo]) and keep exactly ``ceil(n (1 - sparsity))`` of the n weights.

M-FAC (official ``MFACPruner.prune`` [repo]; OBS, Hassibi & Stork 1993): with F^{-1} the static empirical-Fisher
inverse over the weights still alive (static.py), the saliency of weight q is w_q^2 / (2 [F^{-1}]_qq), the loss
increase of the quadratic model when q alone is removed and the rest corrected optimally. The lowest-saliency
weights Q are dropped together and, with ``update``, the others moved by the sum of their single-weight OBS
corrections, delta w = F^{-1} sum_{q in Q} (-w_q / [F^{-1}]_qq) e_q; then w_Q is set to 0 (for one q the
correction alone gives w_q + delta w_q = 0 exactly; for several it neglects their cross terms, as officially).
``recomputations`` k > 1 reaches the target in k steps of equal density ratio, 1 - (1 - s)^(j/k), with fresh
gradients at the corrected weights before each (official ``--nrecomps``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from reproductions.mfac.static import BlockFisherInverse


def keep_count(n: int, sparsity: float) -> int:
    """How many of n weights a target sparsity keeps: ceil(n (1 - sparsity))."""
    return math.ceil(n * (1.0 - sparsity))


def lowest(scores: Tensor, count: int) -> Tensor:
    """Indices of the ``count`` lowest scores; ties: the lower index goes first (stable sort)."""
    return torch.argsort(scores, stable=True)[:count]


def magnitude_mask(weights: Tensor, sparsity: float) -> Tensor:
    """True where a weight survives global magnitude pruning to ``sparsity``."""
    keep = torch.ones(weights.numel(), dtype=torch.bool, device=weights.device)
    keep[lowest(weights.abs(), weights.numel() - keep_count(weights.numel(), sparsity))] = False
    return keep


def obs_saliency(weights: Tensor, inverse_diag: Tensor) -> Tensor:
    """w_q^2 / (2 [F^{-1}]_qq): the quadratic model's loss increase when weight q is removed and the rest corrected."""
    return weights.to(torch.float64) ** 2 / (2.0 * inverse_diag)


def obs_prune(weights: Tensor, inverse: BlockFisherInverse, count: int, update: bool) -> tuple[Tensor, Tensor]:
    """Drop the ``count`` lowest-saliency weights (with the OBS correction when ``update``): (new weights, kept)."""
    w = weights.to(torch.float64)
    diag = inverse.diag()
    drop = lowest(obs_saliency(w, diag), count)
    if update:
        scaled = torch.zeros_like(w)
        scaled[drop] = -w[drop] / diag[drop]
        w = w + inverse.mul(scaled)
    else:
        w = w.clone()
    w[drop] = 0.0
    kept = torch.ones(w.numel(), dtype=torch.bool, device=w.device)
    kept[drop] = False
    return w.to(weights.dtype), kept


def recompute_schedule(sparsity: float, steps: int) -> list[float]:
    """The sparsity after each of ``steps`` pruning steps: equal density ratios, ending at ``sparsity``."""
    return [1.0 - (1.0 - sparsity) ** (j / steps) for j in range(1, steps)] + [sparsity]


def mfac_prune(
    weights: Tensor,
    sparsity: float,
    gradients: Callable[[Tensor, Tensor], Tensor],
    *,
    damp: float,
    blocksize: int | None,
    recomputations: int = 1,
    update: bool = True,
) -> tuple[Tensor, Tensor]:
    """M-FAC pruning of the flat ``weights`` to ``sparsity``: (new weights, kept mask).

    ``gradients(w, alive)`` returns the m x (number alive) matrix of gradients at the full weight vector ``w``,
    restricted to the coordinates where ``alive`` is True (the official code restricts them to its mask).
    """
    w, alive, n = weights.clone(), torch.ones(weights.numel(), dtype=torch.bool, device=weights.device), weights.numel()
    for target in recompute_schedule(sparsity, recomputations):
        count = (n - keep_count(n, target)) - int((~alive).sum())
        if count <= 0:
            continue
        inverse = BlockFisherInverse(gradients(w, alive), damp, blocksize)
        new, kept = obs_prune(w[alive], inverse, count, update)
        w[alive] = new
        alive[alive.clone()] = kept
    return w, alive
