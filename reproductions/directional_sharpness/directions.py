"""The pseudo-update protocol of Pan & Li's official code (README: sources): along ONE training trajectory, the
states of several optimizers are fed the same gradients, so their would-be update directions can be compared at
the same weights.

Directions (the sign is irrelevant to directional sharpness, a quadratic form):
- ``sgd``: momentum as an average, m <- 0.9 m + 0.1 g (m = g at the first step);
- ``sgd_clip``: the same on the coordinate-wise clipped gradient (fraction ``sgd_clip``, the paper's 10%);
- ``adam``: m_hat / (sqrt(v_hat) + eps), beta1 0.9, beta2 0.999, eps 1e-8, with bias correction;
- ``adam_clip``: the first moment fed the clipped gradient (fraction ``adam_clip``, the paper's 50%), the second
  moment the unclipped one, as in the official pseudo-update.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from reproductions.directional_sharpness.clipping import clip_top_coordinates_

NAMES = ("sgd", "sgd_clip", "adam", "adam_clip")


class PseudoDirections:
    """Optimizer states over a list of parameter shapes, advanced by `update(grads)`; `directions()` per name."""

    def __init__(
        self,
        params: Sequence[Tensor],
        *,
        sgd_clip: float = 0.1,
        adam_clip: float = 0.5,
        momentum: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.sgd_clip, self.adam_clip, self.momentum, self.betas, self.eps = sgd_clip, adam_clip, momentum, betas, eps
        zeros = lambda: [torch.zeros_like(p, dtype=torch.float32) for p in params]  # noqa: E731
        self.state = {"sgd": zeros(), "sgd_clip": zeros(), "adam_m": zeros(), "adam_clip_m": zeros(), "second": zeros()}
        self.steps = 0

    def state_dict(self) -> dict:
        return {"state": self.state, "steps": self.steps}

    def load_state_dict(self, saved: dict) -> None:
        device = self.state["sgd"][0].device
        self.state = {key: [t.to(device) for t in tensors] for key, tensors in saved["state"].items()}
        self.steps = int(saved["steps"])

    @torch.no_grad()
    def update(self, grads: Sequence[Tensor]) -> None:
        grads = [g.detach().float() for g in grads]
        clipped_sgd = [g.clone() for g in grads]
        clip_top_coordinates_(clipped_sgd, self.sgd_clip)
        clipped_adam = [g.clone() for g in grads]
        clip_top_coordinates_(clipped_adam, self.adam_clip)
        first = self.steps == 0
        for key, source in (("sgd", grads), ("sgd_clip", clipped_sgd)):
            for m, g in zip(self.state[key], source):
                if first:
                    m.copy_(g)
                else:
                    m.mul_(self.momentum).add_(g, alpha=1 - self.momentum)
        beta1, beta2 = self.betas
        for key, source in (("adam_m", grads), ("adam_clip_m", clipped_adam)):
            for m, g in zip(self.state[key], source):
                m.mul_(beta1).add_(g, alpha=1 - beta1)
        for v, g in zip(self.state["second"], grads):
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        self.steps += 1

    @torch.no_grad()
    def directions(self) -> dict[str, list[Tensor]]:
        beta1, beta2 = self.betas
        c1, c2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        denom = [(v / c2).sqrt_().add_(self.eps) for v in self.state["second"]]
        return {
            "sgd": list(self.state["sgd"]),
            "sgd_clip": list(self.state["sgd_clip"]),
            "adam": [m / c1 / d for m, d in zip(self.state["adam_m"], denom)],
            "adam_clip": [m / c1 / d for m, d in zip(self.state["adam_clip_m"], denom)],
        }
