"""The dynamic M-FAC update around any base optimizer (official ``optim.MFAC.step`` [repo], reference notes).

Per step, over all parameters flattened into one d-vector (one window for the whole model, as officially):

1. g = grad + wd * theta, with each group's ``mfac_decay`` (coupled decay: it enters the Fisher window);
2. g replaces the oldest gradient of the window (zero-initialised), then d = F^{-1} g (``ihvp.py``);
3. d is written into the parameters' ``.grad`` and the base optimizer steps on it (its own weight decay is 0).

With a base SGD without momentum this is the official step theta <- theta - lr d. Official momentum is
v <- beta v + (1 - beta) d; torch SGD's is v <- beta v + d (README: deviations). ``last`` keeps (g, d) of the
latest step, so a measurement can compare d with a dense solve over the same window (``callback.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.optim.wrapper import BaseOptimizerWrapper
from reproductions.mfac.ihvp import SlidingWindowIHVP

DTYPES = {"float32": torch.float32, "float64": torch.float64}
WINDOW_KEY = "mfac_window"  # the gradient window in the optimizer's state_dict


class MFAC(BaseOptimizerWrapper):
    """``base_optimizer`` applied to F^{-1} g, F the damped empirical Fisher of the last ``ngrads`` gradients."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., Optimizer],
        *,
        ngrads: int,
        damp: float,
        decay: float = 0.0,
        window_dtype: str = "float32",
    ) -> None:
        if window_dtype not in DTYPES:
            raise ValueError(f"window_dtype={window_dtype!r} is not one of {', '.join(DTYPES)}")
        super().__init__(params, base_optimizer, dict(mfac_decay=float(decay)))
        self.require_base_without_weight_decay("M-FAC adds it to the gradient before the window")
        params = [p for group in self.param_groups for p in group["params"]]
        self.window = SlidingWindowIHVP(
            sum(p.numel() for p in params), ngrads, damp, dtype=DTYPES[window_dtype], device=params[0].device
        )
        self.last: tuple[Tensor, Tensor] | None = None

    def _decayed_gradient(self) -> Tensor:
        pieces = []
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
                pieces.append((grad + group["mfac_decay"] * p).reshape(-1) if group["mfac_decay"] else grad.reshape(-1))
        return torch.cat(pieces)

    def state_dict(self) -> dict:
        """The base optimizer's state and the gradient window: without the window a resumed (preempted) run would
        restart from an empty Fisher estimate and leave the uninterrupted run's trajectory."""
        return {**super().state_dict(), WINDOW_KEY: self.window.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        self.window.load_state_dict(state.pop(WINDOW_KEY))
        super().load_state_dict(state)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad = self._decayed_gradient()
        self.window.insert(grad)
        direction = self.window.solve(grad)
        self.last = (grad, direction)
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                piece = direction[offset : offset + p.numel()].view_as(p).to(p.dtype)
                offset += p.numel()
                if p.grad is None:
                    p.grad = piece.clone()
                else:
                    p.grad.copy_(piece)
        self.base_optimizer.step()
        return loss
