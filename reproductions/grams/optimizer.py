"""Grams and its baselines on one Adam skeleton, so that the arms differ only in how the step direction is formed.

Per parameter tensor, step t, gradient g (the official Grams code's conventions, Gunale0926/Grams grams/src/grams.py
at f91a375 [repo]):

1. decoupled weight decay first: theta <- theta - lr * wd * theta;
2. m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
3. denom = sqrt(v) + eps (eps on the un-bias-corrected root: the Hugging Face AdamW convention, eps default 1e-6);
4. step size s = lr * sqrt(1 - beta2^t) / (1 - beta1^t);
5. theta <- theta - s * d / denom, with the direction d:

   * ``AdamHF``: d = m (Adam/AdamW in this convention);
   * ``CautiousAdamW`` (C-AdamW, Liang et al., arXiv 2411.16085): d = m * phi, phi = I(m g > 0) * n / (sum I + 1)
     over the tensor's n coordinates (the C-Optim code's original normalization, read in third-party copies of it
     [secondary]): coordinates where momentum and gradient disagree are skipped, the rest scaled up;
   * ``Grams``: d = sign(g) * |m|: every coordinate moves, along the current gradient's sign, by the momentum's size.

The gradient itself is never modified (the official code overwrites ``p.grad`` in place; nothing here reads it later,
but a logger or clipper after the step would).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer


class _AdamSkeleton(Optimizer):
    """Steps 1-4 of the module docstring; subclasses give the direction (step 5)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {tuple(betas)}")
        if not eps >= 0.0 or not weight_decay >= 0.0:
            raise ValueError(f"eps and weight_decay must be >= 0, got {eps} and {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def direction(self, exp_avg: Tensor, grad: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                t = state["step"]
                if group["weight_decay"] > 0:
                    param.mul_(1.0 - group["lr"] * group["weight_decay"])
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])
                step_size = group["lr"] * math.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
                param.addcdiv_(self.direction(exp_avg, grad), denom, value=-step_size)
        return loss


class AdamHF(_AdamSkeleton):
    """AdamW in the Grams code's conventions (direction m): the reference arm."""

    def direction(self, exp_avg: Tensor, grad: Tensor) -> Tensor:
        return exp_avg


class CautiousAdamW(_AdamSkeleton):
    """C-AdamW: the momentum only where it agrees in sign with the gradient, rescaled by n / (active + 1)."""

    def direction(self, exp_avg: Tensor, grad: Tensor) -> Tensor:
        mask = (exp_avg * grad > 0).to(grad.dtype)
        return exp_avg * mask * (mask.numel() / (mask.sum() + 1.0))


class Grams(_AdamSkeleton):
    """Grams: the gradient's sign with the momentum's magnitude."""

    def direction(self, exp_avg: Tensor, grad: Tensor) -> Tensor:
        return torch.sign(grad) * exp_avg.abs()
