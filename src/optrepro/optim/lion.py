"""Lion-K (Chen, Liu, Liang, Liu, ICLR 2024, arXiv 2310.05898): Lion with sign() replaced by the gradient of a convex K.

In the paper's notation (momentum ``m`` tracks the *negative* gradient) one step is

    m_{t+1} = beta2 * m_t - (1 - beta2) * grad f(x_t)
    x_{t+1} = x_t + eps * (grad K(beta1 * m_t - (1 - beta1) * grad f(x_t)) - lambda * x_t)

with learning rate ``eps`` and decoupled weight decay ``lambda``. K = ||.||_1 (grad K = sign) is Lion
(Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"). The paper shows that the iterates
solve ``min_x f(x) + (1/lambda) K*(lambda x)``; for a norm K, K* is the indicator of the dual-norm unit
ball, so the iterates are driven into, and then kept in, ``{x : ||lambda x||_dual <= 1}``:

=======  ==============================  ==========================  ===================
``k``    K(v)                            grad K(v)                   constraint on x
=======  ==============================  ==========================  ===================
l1       ||v||_1 (Lion)                  sign(v)                     ||x||_inf <= 1/lambda
l2       ||v||_2                         v / ||v||_2                 ||x||_2   <= 1/lambda
linf     ||v||_inf                       sign(v_i) e_i, i = argmax   ||x||_1   <= 1/lambda
=======  ==============================  ==========================  ===================

Norms are taken per parameter tensor, i.e. K is the sum over tensors of the tensor's norm; its conjugate
is then the indicator of the product of the per-tensor dual balls, so every tensor is constrained on its own.
Here the momentum tracks the gradient (the sign is flipped once, in the update), as in the official Lion code;
``weight_decay`` is the paper's lambda and the update is ``x <- (1 - lr * lambda) x - lr * grad K(c)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.errors import UnknownChoiceError

_TINY = 1e-30


def _grad_l1(c: Tensor) -> Tensor:
    return torch.sign(c)


def _grad_l2(c: Tensor) -> Tensor:
    # At c = 0 this gives 0, a subgradient of ||.||_2 there.
    return c / torch.linalg.vector_norm(c).clamp_min(_TINY)


def _grad_linf(c: Tensor) -> Tensor:
    flat = c.reshape(-1)
    out = torch.zeros_like(flat)
    if flat.numel():
        i = torch.argmax(flat.abs())
        out[i] = torch.sign(flat[i])
    return out.reshape(c.shape)


# K -> (grad K, the norm of the constraint set: ||lambda x||_dual <= 1).
K_GRADIENTS: dict[str, Callable[[Tensor], Tensor]] = {"l1": _grad_l1, "l2": _grad_l2, "linf": _grad_linf}
DUAL_NORM_ORD: dict[str, float] = {"l1": float("inf"), "l2": 2.0, "linf": 1.0}
K_CHOICES = tuple(K_GRADIENTS)


def dual_norm(x: Tensor, k: str) -> Tensor:
    """The norm whose unit ball (scaled by 1/lambda) is the constraint set of Lion-``k``, of one tensor."""
    return torch.linalg.vector_norm(x.detach().reshape(-1), ord=DUAL_NORM_ORD[check_k(k)])


def check_k(k: str) -> str:
    if k not in K_GRADIENTS:
        raise UnknownChoiceError("optimizer.base.k", k, K_CHOICES)
    return k


class Lion(Optimizer):
    """Lion-K with decoupled weight decay; ``k="l1"`` is standard Lion (official defaults: betas 0.9/0.99)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        k: str = "l1",
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Lion: lr must be >= 0, got {lr}")
        if not (0.0 <= betas[0] <= 1.0 and 0.0 <= betas[1] <= 1.0):
            raise ValueError(f"Lion: betas must lie in [0, 1], got {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"Lion: weight_decay must be >= 0, got {weight_decay}")
        check_k(k)
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay, "k": k})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            grad_k = K_GRADIENTS[check_k(group["k"])]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                m = state["exp_avg"]
                direction = grad_k(torch.lerp(g, m, beta1))  # grad K(beta1 m + (1 - beta1) g)
                if wd != 0.0:
                    p.mul_(1.0 - lr * wd)
                p.add_(direction, alpha=-lr)
                m.lerp_(g, 1.0 - beta2)  # m <- beta2 m + (1 - beta2) g
        return loss

    def constraint_value(self) -> float:
        """max over decayed tensors of lambda * ||x||_dual; <= 1 once the iterates are in the paper's constraint set.

        NaN when no parameter has weight decay (there is no constraint)."""
        values = [
            group["weight_decay"] * float(dual_norm(p, group["k"]))
            for group in self.param_groups
            if group["weight_decay"] > 0
            for p in group["params"]
        ]
        return max(values) if values else float("nan")
