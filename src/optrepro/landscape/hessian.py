"""The largest Hessian eigenvalue of the subset loss, by power iteration on Hessian-vector products.

H v comes from double backward: grad(<grad L(w), v>, w). Power iteration converges to the eigenvalue of
largest magnitude; at a trained minimum that is the top (positive) curvature. BatchNorm must be in eval
mode (the caller's model.eval()), so the loss is a fixed function of the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PowerIteration:
    eigenvalue: float
    iterations: int
    converged: bool
    vector: list[Tensor]  # the last direction: a measurement repeated along training can start from it


def hessian_vector_product(loss_fn: Callable[[], Tensor], params: list[Tensor], vector: list[Tensor]) -> list[Tensor]:
    """H v for the Hessian of `loss_fn()` in `params`."""
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector))
    return [h.detach() for h in torch.autograd.grad(dot, params)]


def top_hessian_eigenvalue(
    loss_fn: Callable[[], Tensor],
    params: list[Tensor],
    *,
    iterations: int = 20,
    tolerance: float = 1e-3,
    generator: torch.Generator | None = None,
) -> PowerIteration:
    """Power iteration from a random unit vector (power_iteration)."""
    start = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    return power_iteration(loss_fn, params, start, iterations=iterations, tolerance=tolerance)


def power_iteration(
    loss_fn: Callable[[], Tensor],
    params: list[Tensor],
    start: list[Tensor],
    *,
    iterations: int = 20,
    tolerance: float = 1e-3,
) -> PowerIteration:
    """Power iteration from `start`; stops when the Rayleigh quotient changes by < tolerance (relative). Returns
    v^T H v for the eigenvalue of largest magnitude, with its sign."""
    if iterations < 1:
        raise ValueError(f"power iteration needs at least 1 iteration, got {iterations}")
    vector, eigenvalue = _unit(start), None
    for step in range(1, iterations + 1):
        product = hessian_vector_product(loss_fn, params, vector)
        estimate = float(sum((h * v).sum() for h, v in zip(product, vector)))
        converged = eigenvalue is not None and abs(estimate - eigenvalue) <= tolerance * max(abs(estimate), 1e-12)
        eigenvalue = estimate
        if converged:
            return PowerIteration(eigenvalue, step, True, vector)
        vector = _unit(product)
    return PowerIteration(eigenvalue, iterations, False, vector)


def _unit(vector: list[Tensor]) -> list[Tensor]:
    norm = torch.sqrt(sum((v * v).sum() for v in vector)).clamp_min(1e-30)
    return [v / norm for v in vector]
