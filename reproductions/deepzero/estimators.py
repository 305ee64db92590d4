"""Zeroth-order gradient estimates from loss values only (DeepZero, Chen et al., ICLR 2024, arXiv 2310.02025).

Both estimators take ``loss_at``, a function that evaluates the loss at the parameters' current values, and perturb
the parameters in place, putting every value back bit for bit before they return. ``base`` is loss_at() at the
unperturbed parameters, computed once by the caller (one query), so an estimate costs ``base`` plus:

* CGE (coordinate-wise, forward difference): one query per active coordinate i,
  g_i = (l(theta + mu e_i) - l(theta)) / mu; an inactive (masked) coordinate's estimate is 0.
* RGE (randomized vector-wise): ``queries`` random Gaussian directions u_j ~ N(0, I) on the active coordinates,
  g = (1 / q) sum_j (l(theta + mu u_j) - l(theta)) / mu * u_j (the textbook form; the official code normalises
  each direction to unit norm per tensor instead, reproductions/deepzero/README.md).

A mask is a 0/1 tensor of a parameter's shape, or None for "every coordinate active".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

LossAt = Callable[[], Tensor]
Masks = Sequence[Tensor | None]


def active_count(params: Sequence[Tensor], masks: Masks) -> int:
    """The number of coordinates an estimate sees: CGE's query count (without the base query)."""
    return sum(p.numel() if m is None else int(m.count_nonzero()) for p, m in zip(params, masks))


def memory_order(tensor: Tensor) -> list[int]:
    """The dimension order in which ``tensor`` is laid out in memory (channels_last conv weights are not in their
    logical order), so that ``tensor.permute(order)`` is contiguous and has a flat view on the same storage."""
    return sorted(range(tensor.dim()), key=lambda d: (-tensor.stride(d), d))


@torch.no_grad()
def cge(loss_at: LossAt, params: Sequence[Tensor], mu: float, base: Tensor, masks: Masks) -> list[Tensor]:
    """Forward differences along each active coordinate; inactive coordinates get 0."""
    grads = [torch.zeros_like(p) for p in params]  # same memory layout as each parameter
    for param, grad, mask in zip(params, grads, masks):
        order = memory_order(param)
        flat, grad_flat = param.data.permute(order).view(-1), grad.permute(order).view(-1)
        indices = range(flat.numel()) if mask is None else mask.permute(order).reshape(-1).nonzero().flatten().tolist()
        for index in indices:
            saved = flat[index].clone()
            flat[index] += mu
            grad_flat[index] = (loss_at() - base) / mu
            flat[index] = saved
    return grads


@torch.no_grad()
def rge(
    loss_at: LossAt,
    params: Sequence[Tensor],
    mu: float,
    base: Tensor,
    masks: Masks,
    queries: int,
    generator: torch.Generator,
) -> list[Tensor]:
    """The mean over ``queries`` Gaussian directions (drawn from ``generator`` on the CPU) of the directional
    forward difference times the direction; directions are zero on inactive coordinates."""
    saved = [p.detach().clone() for p in params]
    grads = [torch.zeros_like(p) for p in params]
    for _ in range(queries):
        directions = []
        for param, mask in zip(params, masks):
            direction = torch.randn(param.shape, generator=generator, dtype=param.dtype).to(param.device)
            directions.append(direction if mask is None else direction * mask)
        torch._foreach_add_(list(params), directions, alpha=mu)
        slope = float((loss_at() - base) / mu)
        torch._foreach_copy_(list(params), saved)
        torch._foreach_add_(grads, directions, alpha=slope / queries)
    return grads


def random_masks(params: Sequence[Tensor], sparsity: float, generator: torch.Generator) -> list[Tensor | None]:
    """Layer-wise random masks at one ratio: each weight tensor (more than one dimension, as the official code's
    conv/linear weights) keeps round((1 - sparsity) * n) coordinates drawn uniformly; biases and norm parameters
    stay dense (None). sparsity 0 gives no masks at all."""
    if sparsity == 0:
        return [None] * len(params)
    masks: list[Tensor | None] = []
    for param in params:
        if param.dim() <= 1:
            masks.append(None)
            continue
        keep = round((1.0 - sparsity) * param.numel())
        order = torch.randperm(param.numel(), generator=generator)[:keep]
        mask = torch.zeros(param.numel(), dtype=param.dtype)
        mask[order] = 1
        masks.append(mask.view(param.shape).to(param.device))
    return masks
