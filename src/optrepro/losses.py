"""Classification losses selectable per run: `train.loss` (cross_entropy | stablemax), `train.loss_dtype`.

StableMax (Prieto et al. 2025, "Grokking at the Edge of Numerical Stability") replaces the exponential of
softmax by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, and normalizes: StableMax(x)_i = s(x_i) / sum_j s(x_j).
Its cross-entropy is -log StableMax(x)_y. `loss_dtype` casts the logits before the loss (the paper varies the
precision of the loss computation alone: float16 / float32 / float64); null keeps the logits' dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import UnknownChoiceError

LOSSES = ("cross_entropy", "stablemax")
LOSS_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}

LossFn = Callable[[Tensor, Tensor], Tensor]


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


def build_loss(name: str = "cross_entropy", *, label_smoothing: float = 0.0, dtype: str | None = None) -> LossFn:
    """The training loss of `train.loss` on logits cast to `train.loss_dtype` (null: as they come)."""
    if name not in LOSSES:
        raise UnknownChoiceError("train.loss", name, LOSSES)
    if dtype is not None and dtype not in LOSS_DTYPES:
        raise UnknownChoiceError("train.loss_dtype", dtype, tuple(LOSS_DTYPES))
    cast = LOSS_DTYPES[dtype] if dtype is not None else None

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        if cast is not None:
            logits = logits.to(cast)
        if name == "stablemax":
            return stablemax_cross_entropy(logits, targets, label_smoothing)
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

    return loss
