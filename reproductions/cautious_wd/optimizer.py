"""Cautious weight decay (CWD; Chen et al., arXiv 2510.12402, Algorithm 1 and Appendix B) around any base optimizer.

With base update direction u_t (the step the base optimizer takes without weight decay is -lr * u_t), CWD is

    x_{t+1} = x_t - lr * (u_t + lambda * I(u_t * x_t >= 0) * x_t)

decoupled decay (eq. 1: x_{t+1} = (1 - lr lambda) x_t - lr u_t) applied only where the update already moves the
coordinate toward zero, zero coordinates included. The wrapper runs the base optimizer with its weight decay set
to 0, reads the sign of u_t from the applied step (x_{t+1}^base - x_t = -lr u_t: the sign of a floating-point
difference is exact, and a step too small to move x_t counts as u_t = 0, i.e. decayed), then decays the masked
coordinates of x_t by lr * lambda, with the group's current lr (the decay follows the schedule, as in the paper).

``mask`` picks the ablations of the paper's Table 2: ``update`` (CWD), ``random`` (each coordinate decayed with
probability equal to the CWD mask's active fraction in its tensor at that step: "random mask of matched sparsity"),
``gradient`` (I(g_t x_t >= 0), the raw gradient instead of the update) and ``all`` (plain decoupled decay, the
AdamW baseline run through the same code path). lambda is the group's ``cautious_decay``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.data.seeds import seeded_generator
from optrepro.optim.wrapper import BaseOptimizerWrapper

MASKS = ("update", "random", "gradient", "all")
RANDOM_MASK_STREAM = 0xC3D  # mixed into the run seed: the random mask's draws are their own stream


def update_mask(delta: Tensor, x: Tensor) -> Tensor:
    """I(u * x >= 0) for the applied step delta = -lr * u (lr > 0)."""
    return (delta * x) <= 0


class CautiousWeightDecay(BaseOptimizerWrapper):
    """``base_optimizer`` (a torch optimizer class or partial) on the same param groups, plus masked decoupled decay.

    Groups carry ``cautious_decay`` (lambda); their ``weight_decay`` must be 0 so the base does not decay too.
    ``mask_counts()`` returns and resets (active, total) coordinate counts over the decayed tensors since the last
    call (the active fraction the paper logs in Figure 7).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., Optimizer],
        *,
        decay: float,
        mask: str = "update",
        seed: int = 0,
    ) -> None:
        if mask not in MASKS:
            raise ValueError(f"mask={mask!r} is not one of {', '.join(MASKS)}")
        if not decay >= 0.0:
            raise ValueError(f"weight decay must be >= 0, got {decay}")
        super().__init__(params, base_optimizer, dict(cautious_decay=float(decay)))
        self.require_base_without_weight_decay("cautious decay replaces it")
        self.mask = mask
        self.generator = seeded_generator(int(seed), RANDOM_MASK_STREAM)
        self._active: Tensor | None = None  # summed on the parameters' device: no host sync per step
        self._total = 0

    def mask_counts(self) -> tuple[float, int]:
        counts = (float(self._active) if self._active is not None else 0.0, self._total)
        self._active, self._total = None, 0
        return counts

    def _mask(self, delta: Tensor, x: Tensor, grad: Tensor | None) -> Tensor:
        if self.mask == "all":
            return torch.ones_like(x, dtype=torch.bool)
        if self.mask == "gradient":
            return (grad * x) >= 0 if grad is not None else torch.ones_like(x, dtype=torch.bool)
        cautious = update_mask(delta, x)
        if self.mask == "update":
            return cautious
        fraction = cautious.float().mean()
        draws = torch.rand(x.shape, generator=self.generator).to(x.device)
        return draws < fraction

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decayed = [
            (group, p)
            for group in self.param_groups
            if group["cautious_decay"] > 0
            for p in group["params"]
            if p.grad is not None
        ]
        before = [p.detach().clone() for _, p in decayed]
        grads = [p.grad.detach().clone() if self.mask == "gradient" else None for _, p in decayed]
        self.base_optimizer.step()
        for (group, param), x, grad in zip(decayed, before, grads):
            mask = self._mask(param - x, x, grad)
            active = mask.sum(dtype=torch.float64)
            self._active = active if self._active is None else self._active + active.to(self._active.device)
            self._total += mask.numel()
            param.sub_(x * mask, alpha=group["lr"] * group["cautious_decay"])
        return loss

    def generator_state(self) -> Tensor:
        return self.generator.get_state()

    def set_generator_state(self, state: Tensor) -> None:
        self.generator.set_state(state)
