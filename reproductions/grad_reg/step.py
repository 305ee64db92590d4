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

import torch
from torch.optim import Optimizer

from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.factory import build_base_optimizer
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


def check_knobs(cfg, accumulate: int) -> tuple[str, float, float]:
    """``optimizer`` node: ``base`` (a Hydra partial of torch SGD), ``method``, ``gamma`` (>= 0), ``epsilon`` (> 0,
    the finite-difference step; unused by double_backprop and none); one micro-batch per step."""
    method, gamma, epsilon = cfg.get("method"), cfg.get("gamma"), cfg.get("epsilon")
    if method not in METHODS:
        raise InvalidConfigError(
            "optimizer.method", f"unknown value {method!r}", f"valid choices: {', '.join(METHODS)}"
        )
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma >= 0:
        raise InvalidConfigError(
            "optimizer.gamma",
            f"{gamma!r} is not a number >= 0",
            "give the penalty strength (gamma / 2) ||grad L||^2, e.g. optimizer.gamma=0.05",
        )
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
        raise InvalidConfigError(
            "optimizer.epsilon",
            f"{epsilon!r} is not a number > 0",
            "give the finite-difference step, e.g. optimizer.epsilon=0.05 (fd_backward steps by -epsilon)",
        )
    if accumulate != 1:
        raise InvalidConfigError(
            "train.accumulate",
            f"{accumulate} micro-batches per step",
            "the gradient-regularization step takes one: set train.accumulate=1",
        )
    return method, float(gamma), float(epsilon)


def validate(cfg) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) before the run has a folder."""
    check_knobs(cfg.optimizer, int(cfg.train.accumulate))


def build_gr_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """The gradient-regularization step on the ``optimizer`` node (check_knobs)."""
    method, gamma, epsilon = check_knobs(cfg, accumulate)
    optimizer = build_base_optimizer(cfg, model)
    return optimizer, GradRegStep(optimizer, method=method, gamma=gamma, epsilon=epsilon, grad_clip=grad_clip)


build_gr_step.validate = validate
