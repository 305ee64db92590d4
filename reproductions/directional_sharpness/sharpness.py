"""Directional sharpness of an update direction v at the current weights: v^T H v / ||v||^2 (Pan & Li 2023).

H is the Hessian of a loss over a fixed batch; H v comes from double backward (the gradient of g . v), so the
Hessian is never formed. Dividing by ||v||^2 makes the number independent of the step's scale, which is what lets
directions of optimizers with different step sizes (SGD, Adam, their clipped versions) be compared at one point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def hessian_vector_product(loss: Tensor, params: Sequence[Tensor], vector: Sequence[Tensor]) -> list[Tensor]:
    """H v for the Hessian of `loss` in `params` (one tensor of v per parameter), by double backward."""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector))
    return list(torch.autograd.grad(dot, params))


def directional_sharpness(
    loss_fn: Callable[[], Tensor], params: Sequence[Tensor], direction: Sequence[Tensor]
) -> float:
    """v^T H v / ||v||^2 of the loss `loss_fn()` (recomputed here) along `direction`; nan for a zero direction."""
    norm_sq = float(sum((v.double() ** 2).sum() for v in direction))
    if norm_sq == 0.0:
        return float("nan")
    hv = hessian_vector_product(loss_fn(), params, direction)
    return float(sum((v.double() * h.double()).sum() for v, h in zip(direction, hv))) / norm_sq
