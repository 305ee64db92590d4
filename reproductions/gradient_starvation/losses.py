"""Spectral Decoupling (Pezeshki et al. 2021, "Gradient Starvation"); preset node
`loss: {_target_: reproductions.gradient_starvation.losses.SpectralDecoupling, sd_lambda: ...}`.

SD adds an L2 penalty on the network's outputs (not its weights) to the cross-entropy: mean over the batch of
CE_i + (lambda / 2) * ||logits_i||^2. The official two-moons code penalizes its single logit the same way
(sd_coef * mean(y_hat^2), i.e. lambda / 2 = sd_coef); here the penalty covers all C logits. The paper's shifted
variant (lambda / 2) * ||logits - gamma||^2 with per-class gamma (official CelebA code) is not implemented.
The official Colored-MNIST script switches SD's loss once, at step `penalty_anneal_iters`, from CE + sd_coef * sd
to sd_coef * (CE + sd): `AnnealedSpectralDecoupling`, which reads the optimizer step from the function the
builder binds (`bind_step`) once the training loop exists.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from optrepro.config_schema import Fraction, NonNegFloat, NonNegInt, PosFloat, Section, check_node


def spectral_decoupling_loss(logits: Tensor, targets: Tensor, sd_lambda: float, label_smoothing: float = 0.0) -> Tensor:
    """Mean over the batch of cross-entropy + (sd_lambda / 2) * ||logits||^2 (Spectral Decoupling)."""
    penalty = 0.5 * float(sd_lambda) * logits.pow(2).sum(dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing) + penalty


class SDKnobs(Section):
    """The `loss` node's knobs of SpectralDecoupling (its `_target_` aside), typed once."""

    sd_lambda: NonNegFloat  # the penalty's weight: 0 is cross-entropy
    label_smoothing: Fraction


class SpectralDecoupling:
    """CE + (sd_lambda / 2) ||logits||^2, averaged over the batch."""

    def __init__(self, sd_lambda: float, label_smoothing: float = 0.0) -> None:
        arguments = dict(sd_lambda=sd_lambda, label_smoothing=label_smoothing)
        check_node(arguments, "loss", SDKnobs)  # one line: key, problem, fix
        self.sd_lambda, self.label_smoothing = float(sd_lambda), float(label_smoothing)

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        return spectral_decoupling_loss(logits, targets, self.sd_lambda, self.label_smoothing)


class AnnealKnobs(SDKnobs):
    """The `loss` node's knobs of AnnealedSpectralDecoupling (its `_target_` aside), typed once."""

    anneal_step: NonNegInt  # the optimizer step from which the annealed loss applies
    anneal_lambda: NonNegFloat
    anneal_scale: PosFloat  # multiplies the loss from anneal_step on


class AnnealedSpectralDecoupling:
    """Spectral Decoupling whose loss changes once, at optimizer step `anneal_step` (official Colored-MNIST SD).

    Before: CE + (sd_lambda / 2) ||logits||^2; from `anneal_step` on: anneal_scale * (CE + (anneal_lambda / 2)
    ||logits||^2).
    """

    def __init__(
        self,
        sd_lambda: float,
        anneal_step: int,
        anneal_lambda: float,
        anneal_scale: float = 1.0,
        label_smoothing: float = 0.0,
    ) -> None:
        arguments = dict(sd_lambda=sd_lambda, anneal_step=anneal_step, anneal_lambda=anneal_lambda)
        arguments.update(anneal_scale=anneal_scale, label_smoothing=label_smoothing)
        check_node(arguments, "loss", AnnealKnobs)  # one line: key, problem, fix
        self.sd_lambda, self.anneal_step = float(sd_lambda), int(anneal_step)
        self.anneal_lambda, self.anneal_scale = float(anneal_lambda), float(anneal_scale)
        self.label_smoothing = float(label_smoothing)
        self.step_source: Callable[[], int] | None = None

    def bind_step(self, step_source: Callable[[], int]) -> None:
        self.step_source = step_source

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.step_source is None:
            raise RuntimeError("AnnealedSpectralDecoupling needs the optimizer step: call bind_step(...) first")
        if self.step_source() < self.anneal_step:
            return spectral_decoupling_loss(logits, targets, self.sd_lambda, self.label_smoothing)
        return self.anneal_scale * spectral_decoupling_loss(logits, targets, self.anneal_lambda, self.label_smoothing)
