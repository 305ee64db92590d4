"""Gradient regularization (Karakida, Takase, Hayase, Osawa; ICML 2023, arXiv 2210.02720) as a step:
``optimizer.step: reproductions.grad_reg.step:build_gr_step``.

GR minimises L~(w) = L(w) + (gamma / 2) ||grad L(w)||^2 on each mini-batch, whose gradient is g + gamma * H g
(g = grad L(w), H the Hessian). ``optimizer.method`` picks how H g is obtained:

* ``double_backprop``: exactly, by differentiating (gamma / 2) ||g||^2 through the graph of g (create_graph);
* ``fd_forward`` (F-GR): one gradient ascent step, w' = w + epsilon * g, and g' = grad L(w') on the same batch:
  H g ~ (g' - g) / epsilon, so the update direction is (1 - gamma / epsilon) g + (gamma / epsilon) g';
* ``fd_backward`` (B-GR): a descent step instead, w' = w - epsilon * g: H g ~ (g - g') / epsilon;
* ``none``: plain g (the SGD baseline on the same code path).

The ascent step is not normalised by ||g|| (the paper's exact parameterisation was not read; README). Both passes
of a finite difference see the same batch, and BatchNorm running statistics are those of the first pass (snapshot
around the second). The base optimizer (torch SGD) then steps along the direction at w; its coupled weight decay is
not part of the penalty. One process, one micro-batch per step, fp32/bf16 (no fp16 loss scaling).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.optim import Optimizer

from optrepro.config_schema import NonNegFloat, OpenSection, PosFloat, check_section
from optrepro.errors import ConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.factory import build_base_optimizer, refuse_micro_batches
from optrepro.optim.standard import finish_step, optimizer_params

METHODS = ("none", "double_backprop", "fd_forward", "fd_backward")
FD_SIGN = {"fd_forward": 1.0, "fd_backward": -1.0}


def batch_loss(backend: TrainingBackend, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, targets, _ = batch
    with backend.autocast():
        logits = backend.model(inputs)
        return backend.loss(logits, targets), logits


class GradRegStep(StepStrategy):
    """One GR update per batch (module docstring) around a plain base optimizer."""

    def __init__(
        self, optimizer: Optimizer, *, method: str, gamma: float, epsilon: float, grad_clip: float | None = None
    ) -> None:
        self.optimizer, self.method, self.grad_clip = optimizer, method, grad_clip
        self.gamma, self.epsilon = float(gamma), float(epsilon)

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        if backend.grad_scaler is not None or backend.world_size > 1:
            raise ConfigError(
                "the gradient-regularization step runs in one process without fp16 loss scaling; "
                "use hardware.devices=1 and fp32 or bf16 (hardware.precision)"
            )
        params = [p for p in optimizer_params(self.optimizer) if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = batch_loss(backend, batch)
        if self.method == "double_backprop":
            grads = torch.autograd.grad(loss, params, create_graph=True)
            squared = sum(g.pow(2).sum() for g in grads)
            backend.backward(loss + 0.5 * self.gamma * squared)
        else:
            backend.backward(loss)
            with torch.no_grad():
                squared = sum(p.grad.pow(2).sum() for p in params if p.grad is not None)
            if self.method in FD_SIGN:
                self._finite_difference(backend, batch, params, FD_SIGN[self.method])
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        metrics["grad_sq_norm"] = squared.detach()
        return StepOutput(loss.detach(), logits.detach(), metrics)

    def _finite_difference(self, backend: TrainingBackend, batch: Batch, params: list, sign: float) -> None:
        """Replace p.grad = g by g + (gamma / epsilon) * sign * (g' - g), g' the gradient at w + sign * epsilon * g."""
        with torch.no_grad():
            weights = [p.detach().clone() for p in params]
            grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
            torch._foreach_add_(params, grads, alpha=sign * self.epsilon)
        self.optimizer.zero_grad(set_to_none=True)
        norm_buffers = snapshot_norm_buffers(backend.model)
        shifted_loss, _ = batch_loss(backend, batch)
        backend.backward(shifted_loss)
        restore_norm_buffers(backend.model, norm_buffers)
        scale = sign * self.gamma / self.epsilon
        with torch.no_grad():
            torch._foreach_copy_(params, weights)
            for param, grad in zip(params, grads):
                shifted = torch.zeros_like(grad) if param.grad is None else param.grad
                param.grad = grad + scale * (shifted - grad)


class GRKnobs(OpenSection):
    """The optimizer keys this step reads beside ``base`` (values: configs/optimizer/grad_reg.yaml, read as given)."""

    method: Literal[METHODS]
    gamma: NonNegFloat  # the penalty strength (gamma / 2) ||grad L||^2
    epsilon: PosFloat  # the finite-difference step (fd_backward steps by -epsilon); unused by double_backprop, none


def validate(cfg) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) before the run has a folder."""
    check_section(cfg, "optimizer", GRKnobs)
    refuse_micro_batches(int(cfg.train.accumulate), "gradient-regularization")


def build_gr_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """The gradient-regularization step on the ``optimizer`` node: ``base`` (a Hydra partial of torch SGD) and the
    GRKnobs (checked by validate before any work); one micro-batch per step."""
    refuse_micro_batches(accumulate, "gradient-regularization")
    optimizer = build_base_optimizer(cfg, model)
    step = GradRegStep(
        optimizer, method=str(cfg.method), gamma=float(cfg.gamma), epsilon=float(cfg.epsilon), grad_clip=grad_clip
    )
    return optimizer, step


build_gr_step.validate = validate
