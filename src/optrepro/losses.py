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
The official Colored-MNIST script switches SD's loss once, at step `penalty_anneal_iters`, from
CE + sd_coef * sd to sd_coef * (CE + sd): `train.sd_anneal_step` (null: never), from which optimizer step on the
loss is `train.sd_anneal_scale` * (CE + (`train.sd_anneal_lambda` / 2) * ||logits||^2)
(`AnnealedSpectralDecoupling`; it reads the step from a function bound after the training loop exists).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import ConfigError, UnknownChoiceError

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


class AnnealedSpectralDecoupling:
    """Spectral Decoupling whose loss changes once, at optimizer step `anneal_step` (official Colored-MNIST SD).

    Before: CE + (sd_lambda / 2) ||logits||^2; from `anneal_step` on: anneal_scale * (CE + (anneal_lambda / 2)
    ||logits||^2). The step comes from `step_source`, bound by the builder once the training loop exists.
    """

    def __init__(self, sd_lambda: float, anneal_step: int, anneal_lambda: float, anneal_scale: float,
                 label_smoothing: float = 0.0, cast: torch.dtype | None = None) -> None:
        self.sd_lambda, self.anneal_step = float(sd_lambda), int(anneal_step)
        self.anneal_lambda, self.anneal_scale = float(anneal_lambda), float(anneal_scale)
        self.label_smoothing, self.cast = label_smoothing, cast
        self.step_source: Callable[[], int] | None = None

    def bind_step(self, step_source: Callable[[], int]) -> None:
        self.step_source = step_source

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.step_source is None:
            raise RuntimeError("AnnealedSpectralDecoupling needs the optimizer step: call bind_step(...) first")
        if self.cast is not None:
            logits = logits.to(self.cast)
        if self.step_source() < self.anneal_step:
            return spectral_decoupling_loss(logits, targets, self.sd_lambda, self.label_smoothing)
        return self.anneal_scale * spectral_decoupling_loss(logits, targets, self.anneal_lambda, self.label_smoothing)


def build_loss(name: str = "cross_entropy", *, label_smoothing: float = 0.0, dtype: str | None = None,
               sd_lambda: float = 0.0, sd_anneal_step: int | None = None, sd_anneal_lambda: float | None = None,
               sd_anneal_scale: float = 1.0) -> LossFn:
    """The training loss of `train.loss` on logits cast to `train.loss_dtype` (null: as they come)."""
    if name not in LOSSES:
        raise UnknownChoiceError("train.loss", name, LOSSES)
    if dtype is not None and dtype not in LOSS_DTYPES:
        raise UnknownChoiceError("train.loss_dtype", dtype, tuple(LOSS_DTYPES))
    cast = LOSS_DTYPES[dtype] if dtype is not None else None
    if sd_anneal_step is not None or sd_anneal_lambda is not None:
        if name != "spectral_decoupling" or sd_anneal_step is None or sd_anneal_lambda is None or sd_anneal_step < 0:
            raise ConfigError(
                f"train.sd_anneal_step={sd_anneal_step}, train.sd_anneal_lambda={sd_anneal_lambda} with "
                f"train.loss={name}: the SD anneal needs train.loss=spectral_decoupling and both set "
                "(step >= 0), or both null for no anneal"
            )
        return AnnealedSpectralDecoupling(sd_lambda, sd_anneal_step, sd_anneal_lambda, sd_anneal_scale,
                                          label_smoothing, cast)

    def loss(logits: Tensor, targets: Tensor) -> Tensor:
        if cast is not None:
            logits = logits.to(cast)
        if name == "stablemax":
            return stablemax_cross_entropy(logits, targets, label_smoothing)
        if name == "spectral_decoupling":
            return spectral_decoupling_loss(logits, targets, sd_lambda, label_smoothing)
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

    return loss
