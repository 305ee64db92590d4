"""Shampoo (Gupta, Koren, Singer, ICML 2018, arXiv 1802.09568): one preconditioner per tensor dimension.

For a parameter of order k (a matrix: k = 2) with gradient G, dimension i keeps the statistic

    H_i <- H_i + G_(i) G_(i)^T,        H_i initialized to epsilon * I,

where G_(i) is G with dimension i as rows and all other dimensions flattened into columns, and the step is

    W <- W - lr * G x_1 H_1^{-1/(2k)} x_2 ... x_k H_k^{-1/(2k)}          (x_i: product along dimension i)

i.e. Algorithm 2 of the paper; for a matrix this is Algorithm 1, W <- W - lr L^{-1/4} G R^{-1/4}. By the Kronecker
identity the matrix step is full-matrix AdaGrad's step with the preconditioner (L ⊗ R)^{1/4} in place of the full
statistic's square root (tests/optim/test_shampoo.py checks it against that dense product).

Additions to the paper's algorithm, each off at its neutral value:
* ``update_freq``: the inverse roots are recomputed every that many steps (statistics still grow every step);
  1 is the paper's algorithm. Recomputing them is the only cubic cost, so this bounds the time per step.
* ``momentum``: heavy-ball momentum on the preconditioned direction (0: none).
* ``weight_decay``: coupled (L2), added to the gradient before the statistics, as SGD does.
* ``max_preconditioner_dim``: a dimension longer than this is not preconditioned (identity) instead of building
  a huge statistic; Shi et al. (2023) instead split such tensors into blocks, which is not done here.
Inverse roots are computed in float64 by an eigendecomposition, eigenvalues clamped at ``epsilon``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from optrepro.optim.per_parameter import PerParameterOptimizer


def inverse_root(matrix: Tensor, exponent: float, floor: float, shift: float = 0.0) -> Tensor:
    """(matrix + shift I)^{-1/exponent} for a symmetric PSD matrix, in float64, its eigenvalues clamped below at
    ``floor`` before the shift (Gupta et al.: floor epsilon, no shift; Shi et al.: floor 0, shift epsilon).

    A non-finite statistic (a diverged run) gives a NaN root rather than an eigh error, so the loss turns NaN
    and the run is recorded as diverged instead of failed."""
    if not torch.isfinite(matrix).all():
        return torch.full(matrix.shape, float("nan"), dtype=torch.float64, device=matrix.device)
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix.double())
    return (eigenvectors * (eigenvalues.clamp_min(floor) + shift).pow(-1.0 / exponent)) @ eigenvectors.T


def matricize(tensor: Tensor, dim: int) -> Tensor:
    """``tensor`` with dimension ``dim`` as rows and the others flattened into columns."""
    return tensor.movedim(dim, 0).reshape(tensor.shape[dim], -1)


def multiply_along(tensor: Tensor, matrix: Tensor, dim: int) -> Tensor:
    """The mode-``dim`` product: ``matrix`` applied to every fibre of ``tensor`` along ``dim``."""
    return torch.tensordot(matrix, tensor, dims=([1], [dim])).movedim(0, dim)


class Shampoo(PerParameterOptimizer):
    """Shampoo (Gupta et al. 2018, Algorithm 2); defaults reproduce the paper's update without extras."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        epsilon: float = 1e-4,
        update_freq: int = 1,
        max_preconditioner_dim: int = 2048,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Shampoo: lr must be >= 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Shampoo: momentum must lie in [0, 1), got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Shampoo: weight_decay must be >= 0, got {weight_decay}")
        if not epsilon > 0.0:
            raise ValueError(f"Shampoo: epsilon must be > 0 (the statistics start at epsilon * I), got {epsilon}")
        if isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1:
            raise ValueError(f"Shampoo: update_freq must be an integer >= 1 (1: every step), got {update_freq!r}")
        if (
            isinstance(max_preconditioner_dim, bool)
            or not isinstance(max_preconditioner_dim, int)
            or max_preconditioner_dim < 1
        ):
            raise ValueError(f"Shampoo: max_preconditioner_dim must be an integer >= 1, got {max_preconditioner_dim!r}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "epsilon": epsilon,
            "update_freq": update_freq,
            "max_preconditioner_dim": max_preconditioner_dim,
        }
        super().__init__(params, defaults)

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        grad = p.grad.reshape(p.shape or (1,))  # a scalar is a vector of length 1
        if group["weight_decay"] != 0.0:
            grad = grad + group["weight_decay"] * p.reshape(grad.shape)
        state = self.state[p]
        if not state:
            state["step"] = 0
            # None marks a dimension left unpreconditioned (longer than max_preconditioner_dim).
            state["statistics"] = [
                group["epsilon"] * torch.eye(n, dtype=p.dtype, device=p.device)
                if n <= group["max_preconditioner_dim"]
                else None
                for n in grad.shape
            ]
            state["inverse_roots"] = [None] * grad.dim()
            if group["momentum"] > 0.0:
                state["momentum_buffer"] = torch.zeros_like(grad)
        state["step"] += 1
        order = grad.dim()
        recompute = (state["step"] - 1) % group["update_freq"] == 0
        direction = grad
        for dim, statistic in enumerate(state["statistics"]):
            if statistic is None:
                continue
            g = matricize(grad, dim)
            statistic.addmm_(g, g.T)
            if recompute:
                root = inverse_root(statistic, 2 * order, group["epsilon"])
                state["inverse_roots"][dim] = root.to(p.dtype)
            direction = multiply_along(direction, state["inverse_roots"][dim], dim)
        if group["momentum"] > 0.0:
            direction = state["momentum_buffer"].mul_(group["momentum"]).add_(direction)
        p.add_(direction.reshape(p.shape), alpha=-group["lr"])
