"""Stochastic sub-Jacobian descent (SSJD) for instance-wise risk minimization (IWRM), as a step strategy.

Preset node: ``optimizer: {step: reproductions.jacobian_descent.step:build_jd_step, aggregator: upgrad, base: ...}``.

Each training example of the batch is one objective (paper, Section 3: IWRM). A step computes the per-example
Jacobian J (batch x parameters) with ``torch.func`` (vmap of grad over the examples), its Gramian G = J J^T in
float64, the aggregator's weights w (``aggregators.py``), writes A(J) = J^T w into ``.grad`` and lets the base
optimizer step (paper, Appendix D.4: plain torch SGD, no momentum or weight decay, "the gradient replaced by the
aggregation of the Jacobian"). With ``aggregator: mean`` the update is computed exactly as the standard SGD step (one
backward of the batch-mean loss), since IWRM with the mean is ERM with SGD (paper, Section 5); its Jacobian is
still computed when ``track_conflict`` is on, to measure how much the SGD update conflicts with the examples.

Per step (``track_conflict: true``, default), with d the applied update and g_i the rows of J:
``worst_conflict`` = max_i -cos(g_i, d) (> 0: d increases some example's loss to first order; a non-conflicting
aggregator keeps it <= 0 up to round-off), ``conflict_frac`` = share of rows with cos(g_i, d) < -1e-6, and
``cos_to_mean`` = cos(d, mean of the rows) (the paper's Figure 2(b, d) "update similarity to the SGD update"),
``worst_scaled_conflict`` = max_i -<g_i, d> / (max_j ||g_j|| ||d||): the same conflict on the batch's scale, so
that round-off on a nearly zero row (a fitted example) does not read as a large cosine.
``JDStatsCallback`` (callback.py) writes them into the history rows, so they reach the run record.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, grad, vmap

from optrepro.config_schema import NonNegFloat, OpenSection, check_section
from optrepro.errors import InvalidConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.factory import build_base_optimizer, refuse_micro_batches
from optrepro.optim.standard import Chunk, finish_step, forward_loss, optimizer_params
from reproductions.jacobian_descent.aggregators import AGGREGATORS, REG_EPS, aggregator_weights, check_aggregator

CONFLICT_COS_TOL = 1e-6  # a row counts as conflicting when cos(g_i, d) is below -this
STAT_KEYS = ("worst_conflict", "conflict_frac", "cos_to_mean")


def per_example_jacobian(
    backend: TrainingBackend, params: list[Tensor], inputs: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(J as batch x n_params float32, per-example losses, logits): one gradient per example, via torch.func."""
    model = backend.model
    by_id = {id(p): name for name, p in model.named_parameters()}
    missing = [p for p in params if id(p) not in by_id]
    if missing:
        raise ValueError("optimizer parameters are not parameters of the backend's model")
    names = [by_id[id(p)] for p in params]
    detached = {name: p.detach() for name, p in zip(names, params)}
    buffers = dict(model.named_buffers())

    def example_loss(theta: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        logits = functional_call(model, {**buffers, **theta}, (x.unsqueeze(0),))
        loss = backend.loss(logits, y.unsqueeze(0))
        return loss, (loss.detach(), logits.detach()[0])

    grads, (losses, logits) = vmap(grad(example_loss, has_aux=True), in_dims=(None, 0, 0))(detached, inputs, targets)
    jacobian = torch.cat([grads[name].reshape(len(targets), -1) for name in names], dim=1)
    return jacobian, losses, logits


def conflict_stats(jacobian: Tensor, update: Tensor) -> Tensor:
    """[worst_conflict, conflict_frac, cos_to_mean, worst_scaled_conflict] of update d against the rows of J
    (float64; module docstring)."""
    j = jacobian.to(torch.float64)
    d = update.to(torch.float64)
    row_norms = j.norm(dim=1)
    d_norm = d.norm()
    tiny = torch.finfo(torch.float64).tiny
    cos = (j @ d) / (row_norms * d_norm).clamp_min(tiny)
    active = row_norms > 0
    if d_norm == 0 or not bool(active.any()):
        worst = torch.zeros((), dtype=torch.float64, device=j.device)
        frac = torch.zeros((), dtype=torch.float64, device=j.device)
        scaled = torch.zeros((), dtype=torch.float64, device=j.device)
    else:
        worst = (-cos[active]).max()
        frac = (cos[active] < -CONFLICT_COS_TOL).double().mean()
        scaled = (-(j @ d)).max() / (row_norms.max() * d_norm)
    mean_row = j.mean(dim=0)
    cos_mean = (mean_row @ d) / (mean_row.norm() * d_norm).clamp_min(tiny)
    return torch.stack([worst, frac, cos_mean, scaled])


class JacobianDescentStep(StepStrategy):
    """One SSJD step: per-example Jacobian, aggregation, base optimizer update (module docstring)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        aggregator: str,
        grad_clip: float | None = None,
        track_conflict: bool = True,
        seed: int = 0,
        reg_eps: float = REG_EPS,
    ) -> None:
        if not reg_eps >= 0:
            raise ValueError(f"optimizer.reg_eps={reg_eps}: must be >= 0 (0: the exact dual-cone projections)")
        self.reg_eps = float(reg_eps)
        self.optimizer = optimizer
        self.aggregator = check_aggregator(aggregator)
        self.grad_clip = grad_clip
        self.track_conflict = track_conflict
        self.rng = np.random.default_rng(seed)  # PCGrad's random orders
        self.epoch_stats: list[Tensor] = []

    def pop_epoch_stats(self) -> list[Tensor]:
        stats, self.epoch_stats = self.epoch_stats, []
        return stats

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        if backend.world_size != 1:
            raise ValueError("the Jacobian descent step runs on one process (hardware with world size 1)")
        if backend.grad_scaler is not None:
            raise ValueError("the Jacobian descent step does not support fp16 loss scaling; use fp32 or bf16 hardware")
        inputs, targets, _ = batch
        params = [p for p in optimizer_params(self.optimizer) if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        if self.aggregator == "mean":
            loss, logits = forward_loss(backend, Chunk(inputs, targets, 1.0))
            backend.backward(loss)
            if self.track_conflict:
                update = torch.cat([p.grad.reshape(-1) for p in params]).detach()
                jacobian, _, _ = per_example_jacobian(backend, params, inputs, targets)
                self.epoch_stats.append(conflict_stats(jacobian, update))
            metrics = finish_step(backend, self.optimizer, self.grad_clip)
            return StepOutput(loss.detach(), logits.detach(), metrics)

        jacobian, losses, logits = per_example_jacobian(backend, params, inputs, targets)
        j64 = jacobian.to(torch.float64)
        weights = aggregator_weights(self.aggregator, j64 @ j64.T, self.rng, self.reg_eps)
        update = (weights @ j64).to(jacobian.dtype)  # in float64: large weights would amplify float32 round-off
        offset = 0
        for p in params:
            p.grad = update[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        if self.track_conflict:
            self.epoch_stats.append(conflict_stats(jacobian, update))
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        return StepOutput(losses.mean(), logits, metrics)


class JDKnobs(OpenSection):
    """The optimizer keys the Jacobian descent step reads; absent ones take TorchJD's defaults."""

    aggregator: Literal[AGGREGATORS] = "upgrad"
    reg_eps: NonNegFloat = REG_EPS  # 0: exact dual-cone projections; a small ridge such as 1e-4 (TorchJD)
    track_conflict: bool = True


def validate(cfg) -> None:
    """The step's knobs, checked by the config check (optrepro.config_schema, rule step_config) before the run has a
    folder: one line naming the key, the problem and the fix."""
    check_section(cfg, "optimizer", JDKnobs)
    refuse_micro_batches(int(cfg.train.accumulate), "Jacobian descent")
    world = int(cfg.hardware.devices) * int(cfg.hardware.num_nodes)
    if world != 1:
        raise InvalidConfigError(
            "hardware",
            f"world size {world}: the Jacobian descent step runs on one process",
            "use hardware=cpu or hardware=gpu (one device)",
        )
    if str(cfg.hardware.precision).startswith("16"):
        raise InvalidConfigError(
            "hardware.precision",
            f"{cfg.hardware.precision}: the Jacobian descent step does not support fp16 loss scaling",
            "use 32-true or bf16-mixed",
        )


def build_jd_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer.aggregator`` (upgrad, mean, mgda, dualproj, pcgrad), ``optimizer.track_conflict`` (default true),
    ``optimizer.reg_eps`` (UPGrad/DualProj Gramian regularization, default 1e-4 as TorchJD; aggregators.py)."""
    aggregator = check_aggregator(str(cfg.get("aggregator", "upgrad")))
    refuse_micro_batches(accumulate, "Jacobian descent")
    norm_layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norm_layers:
        raise ValueError(
            "the Jacobian descent step needs a model without BatchNorm (one objective per example: per-example "
            f"gradients); found {type(norm_layers[0]).__name__}"
        )
    optimizer = build_base_optimizer(cfg, model)
    seed = int(torch.randint(2**31 - 1, (1,)).item())  # from the run's seeded torch generator
    step = JacobianDescentStep(
        optimizer,
        aggregator=aggregator,
        grad_clip=grad_clip,
        track_conflict=bool(cfg.get("track_conflict", True)),
        seed=seed,
        reg_eps=float(cfg.get("reg_eps", REG_EPS)),
    )
    return optimizer, step


build_jd_step.validate = validate
