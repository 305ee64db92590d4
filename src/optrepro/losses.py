"""Classification losses selectable per run: `train.loss` (cross_entropy | stablemax | spectral_decoupling),
`train.loss_dtype`, `train.sd_lambda`.

StableMax (Prieto et al. 2025, "Grokking at the Edge of Numerical Stability") replaces the exponential of
softmax by s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, and normalizes: StableMax(x)_i = s(x_i) / sum_j s(x_j).
Its cross-entropy is -log StableMax(x)_y. `loss_dtype` casts the logits before the loss (the paper varies the
precision of the loss computation alone: float16 / float32 / float64); null keeps the logits' dtype.

Spectral Decoupling (Pezeshki et al. 2021, "Gradient Starvation") adds an L2 penalty on the network's outputs
(not its weights) to the cross-entropy: mean over the batch of CE_i + (lambda / 2) * ||logits_i||^2, lambda =
`train.sd_lambda`. The official two-moons code penalizes its single logit the same way (sd_coef * mean(y_hat^2),
i.e. lambda / 2 = sd_coef); here the penalty covers all C logits. The paper's shifted variant
(lambda / 2) * ||logits - gamma||^2 with per-class gamma (official CelebA code) is not implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import UnknownChoiceError

LOSSES = ("cross_entropy", "stablemax", "spectral_decoupling")
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


def spectral_decoupling_loss(logits: Tensor, targets: Tensor, sd_lambda: float, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the batch of cross-entropy + (sd_lambda / 2) * ||logits||^2 (Spectral Decoupling)."""
    penalty = 0.5 * float(sd_lambda) * logits.pow(2).sum(dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing) + penalty


def build_loss(name: str = "cross_entropy", *, label_smoothing: float = 0.0, dtype: str | None = None,
               sd_lambda: float = 0.0) -> LossFn:
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
        if name == "spectral_decoupling":
            return spectral_decoupling_loss(logits, targets, sd_lambda, label_smoothing)
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

    return loss
