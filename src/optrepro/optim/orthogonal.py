"""⊥Grad (Prieto et al. 2025): step any base optimizer on the gradient with its radial part removed.

For every parameter tensor w with gradient g (both flattened):

    g_perp = g - (w.g / w.w) w           the component of g orthogonal to w
    g'     = g_perp * ||g|| / ||g_perp||   rescaled to the norm of the original gradient

and the base optimizer (AdamW, SGD, ...) steps on g'. The rescaling follows the official code's OrthoGrad
wrapper (orthograd.py, read via the EIFY fork of LucasPrietoAl/grokking-at-the-edge-of-numerical-stability);
tiny constants keep w = 0 and g_perp = 0 finite. With plain SGD (no momentum, no decay), the update
-lr * g' has zero component along w, so to first order the step does not grow ||w|| (Naive Loss Minimization).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.optim.wrapper import BaseOptimizerWrapper

TINY = 1e-30


@torch.no_grad()
def orthogonalize_(param: Tensor, *, rescale: bool = True) -> None:
    """Replace ``param.grad`` in place by its part orthogonal to ``param`` (rescaled to the old norm)."""
    grad = param.grad
    if grad is None:
        return
    w, g = param.detach().reshape(-1), grad.reshape(-1)
    coefficient = torch.dot(w, g) / (torch.dot(w, w) + TINY)
    g_perp = g - coefficient * w
    if rescale:
        g_perp = g_perp * (g.norm() / (g_perp.norm() + TINY))
    grad.copy_(g_perp.view_as(grad))


class OrthogonalGrad(BaseOptimizerWrapper):
    """⊥Grad around ``base_optimizer`` (a torch optimizer class or partial, built on the same param groups; see
    :class:`~optrepro.optim.wrapper.BaseOptimizerWrapper` for the shared state).
    A group with ``orthogonal=False`` is stepped on its plain gradient.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., Optimizer],
        *,
        rescale: bool = True,
    ) -> None:
        super().__init__(params, base_optimizer, dict(orthogonal=True))
        self.rescale = rescale

    @torch.no_grad()
    def orthogonalize_grads(self) -> None:
        for group in self.param_groups:
            if group.get("orthogonal", True):
                for param in group["params"]:
                    orthogonalize_(param, rescale=self.rescale)

    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.orthogonalize_grads()
        self.base_optimizer.step()
        return loss
