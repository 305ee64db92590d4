"""Tiny float64 problems whose SAM step has a closed form, shared by the SAM-family tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optrepro.optim.backend import LocalBackend


def half_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """0.5 * mean squared error: for a linear model its gradient is ``A w - b`` with ``A = X^T X / n``."""
    return 0.5 * (outputs.squeeze(-1) - targets).pow(2).mean()


def quadratic_terms(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``A, b`` of the half-MSE of a bias-free linear model on ``(inputs, targets)``."""
    n = len(targets)
    return inputs.T @ inputs / n, inputs.T @ targets / n


def linear_regression_batch(n: int = 8, d: int = 5, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, d, generator=generator, dtype=torch.float64)
    targets = torch.randn(n, generator=generator, dtype=torch.float64)
    return inputs, targets, torch.arange(n)


def linear_model(d: int = 5, seed: int = 1) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, 1, bias=False).double()


def regression_backend(model: nn.Module) -> LocalBackend:
    return LocalBackend(model, loss_fn=half_mse)


def flat_params(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def sam_gradient(w: Tensor, A: Tensor, b: Tensor, *, rho: float, eps: float = 1e-12) -> Tensor:
    """Gradient at ``w + rho * g / ||g||`` of ``0.5 w^T A w - b^T w`` (the SAM update direction)."""
    g = A @ w - b
    return A @ (w + rho * g / (g.norm() + eps)) - b
