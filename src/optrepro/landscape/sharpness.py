"""Worst-case adaptive sharpness (Kwon et al. 2021, as studied by Andriushchenko et al., ICML 2023).

    S(w) = max_{ |delta_i| <= rho |w_i| for every i }  L(w + delta) - L(w)

an l-infinity ball scaled elementwise by |w|, which makes the figure invariant to the rescalings that leave
a ReLU/BatchNorm network's function unchanged. The maximum is approximated by projected sign-gradient ascent
from delta = 0 (the l-infinity steepest-ascent step): delta <- clip(delta + step |w| sign(grad), -rho|w|, rho|w|),
step = 2 rho / steps, keeping the largest loss seen. It is a lower bound on the true maximum. Every trainable
parameter is perturbed (biases and BatchNorm affine parameters too); BatchNorm stays in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AdaptiveSharpness:
    value: float
    base_loss: float
    rho: float
    steps: int


def adaptive_sharpness(
    loss_fn: Callable[[], Tensor],
    params: list[Tensor],
    *,
    rho: float,
    steps: int = 10,
) -> AdaptiveSharpness:
    """Largest loss increase found within the |w|-scaled l-infinity ball of radius rho; params are restored after."""
    if rho <= 0 or steps < 1:
        raise ValueError(f"adaptive sharpness needs rho > 0 and steps >= 1 (got rho={rho}, steps={steps})")
    center = [p.detach().clone() for p in params]
    radius = [rho * w.abs() for w in center]
    step = 2.0 * rho / steps
    with torch.no_grad():
        base_loss = float(loss_fn())
    worst = base_loss
    delta = [torch.zeros_like(w) for w in center]
    try:
        for _ in range(steps):
            _place(params, center, delta)
            loss = loss_fn()
            worst = max(worst, float(loss.detach()))
            grads = torch.autograd.grad(loss, params)
            delta = [
                torch.clamp(d + step * w.abs() * g.sign(), -r, r) for d, w, g, r in zip(delta, center, grads, radius)
            ]
        _place(params, center, delta)
        with torch.no_grad():
            worst = max(worst, float(loss_fn()))
    finally:
        _place(params, center, [torch.zeros_like(w) for w in center])
    return AdaptiveSharpness(worst - base_loss, base_loss, rho, steps)


@torch.no_grad()
def _place(params: list[Tensor], center: list[Tensor], delta: list[Tensor]) -> None:
    for p, w, d in zip(params, center, delta):
        p.copy_(w + d)
