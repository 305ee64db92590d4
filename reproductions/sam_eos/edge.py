"""The SAM-edge (Long & Bartlett, arXiv 2309.12488): the largest Hessian eigenvalue at which SAM is still stable on
the local quadratic model, with the gradient norm held fixed.

Along an eigenvector with eigenvalue lam a SAM step (radius rho, learning rate eta) multiplies that coordinate by
1 - eta lam - eta rho lam^2 / ||g||; stability needs eta lam + eta rho lam^2 / ||g|| <= 2, whose positive root is
SE = (||g|| / (2 rho)) (sqrt(1 + 8 rho / (eta ||g||)) - 1) (the official sam_edge.py computes the same). As rho -> 0
it tends to GD's edge 2/eta, so rho = 0 returns 2/eta: one "edge of the method" for both.
"""

from __future__ import annotations

import math


def sam_edge(lr: float, rho: float, grad_norm: float) -> float:
    """SE(eta, rho, ||g||); 2/eta when rho = 0 (gradient descent); 0 when ||g|| = 0 and rho > 0 (the limit)."""
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"the SAM-edge needs a learning rate > 0, got {lr}")
    if not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f"the SAM-edge needs rho >= 0, got {rho}")
    if not grad_norm >= 0:
        raise ValueError(f"the SAM-edge needs a gradient norm >= 0, got {grad_norm}")
    if rho == 0:
        return 2.0 / lr
    if grad_norm == 0:
        return 0.0
    ratio = 8.0 * rho / (lr * grad_norm)
    # (sqrt(1 + r) - 1) written as r / (sqrt(1 + r) + 1): no cancellation when r is tiny (large ||g||)
    return grad_norm / (2.0 * rho) * ratio / (math.sqrt(1.0 + ratio) + 1.0)
