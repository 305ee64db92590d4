"""StableMax cross-entropy (Prieto et al. 2025, "Grokking at the Edge of Numerical Stability"); preset node
`loss: {_target_: reproductions.grokking.losses.StableMaxCrossEntropy}` (configs/loss/stablemax.yaml).

StableMax replaces the exponential of softmax by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, and normalizes:
StableMax(x)_i = s(x_i) / sum_j s(x_j). Its cross-entropy is -log StableMax(x)_y. The paper varies the precision
of the loss computation alone: that is the general `train.loss_dtype` (optrepro.losses).
"""

from __future__ import annotations

import torch
from torch import Tensor


def stablemax_s(x: Tensor) -> Tensor:
    """s(x) = x + 1 (x >= 0), 1 / (1 - x) (x < 0): positive, continuous with slope 1 at 0, linear growth."""
    negative = x < 0
    # where() evaluates both branches: keep the unused one finite so no inf/NaN reaches the gradient.
    return torch.where(negative, 1.0 / (1.0 - torch.where(negative, x, torch.zeros_like(x))), x + 1.0)


def stablemax(x: Tensor, dim: int = -1) -> Tensor:
    s = stablemax_s(x)
    return s / s.sum(dim=dim, keepdim=True)


def log_stablemax(x: Tensor, dim: int = -1) -> Tensor:
    s = stablemax_s(x)
    return torch.log(s) - torch.log(s.sum(dim=dim, keepdim=True))


def stablemax_cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the batch of -log StableMax(logits)_target (with optional label smoothing, as F.cross_entropy)."""
    logp = log_stablemax(logits, dim=-1)
    nll = -logp.gather(-1, targets[:, None]).squeeze(-1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(dim=-1)
    return nll.mean()


class StableMaxCrossEntropy:
    """The training loss: `stablemax_cross_entropy` with the run's label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = float(label_smoothing)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        return stablemax_cross_entropy(logits, targets, self.label_smoothing)
