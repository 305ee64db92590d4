"""DeepZero's zeroth-order training step: ``optimizer.step: reproductions.deepzero.step:build_zo_step``.

Each step, on the training batch and with only loss values (no backward pass):

1. the base query l(theta) (the loss and logits the step reports; BatchNorm running statistics are updated by this
   pass only: they are snapshotted after it and restored after the queries, as the official code's loss oracle
   restores the whole state dict);
2. a gradient estimate (reproductions/deepzero/estimators.py): ``estimator: cge`` (one forward difference per
   active coordinate, DeepZero's choice) or ``rge`` (``queries`` random Gaussian directions; ``queries: null`` =
   as many as CGE's active coordinates, the equal query budget); ``first_order`` is plain backprop on the same code
   path (the FO baseline);
3. the estimate goes into ``p.grad`` and the base optimizer (SGD with momentum, coupled weight decay: the official
   ``sparse_gradient_training.py``) steps, so weight decay is exact, not estimated.

Sparsity (``sparsity`` > 0): a layer-wise random mask at that ratio on each weight tensor, re-drawn every
``mask_interval`` epochs (the official ``layer_wise_random`` score and ``--mask-shuffle-interval 5``); CGE then
queries only the unmasked coordinates and RGE draws directions only on them. All weights stay trainable. The
official code takes the per-layer ratios from ZO-GraSP; here every layer gets the same ratio (README: deviations).
The mask and direction draws come from a CPU generator seeded from the run seed; its state and the current masks are
part of the strategy's checkpoint state. One process, one micro-batch per step, no fp16 loss scaling.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.config_schema import Fraction, OpenSection, PosFloat, PosInt, check_section
from optrepro.data.seeds import seeded_generator
from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.factory import build_base_optimizer, refuse_micro_batches
from optrepro.optim.standard import finish_step, optimizer_params
from reproductions.deepzero.estimators import active_count, cge, random_masks, rge

ESTIMATORS = ("cge", "rge", "first_order")
ZO_STREAM = 0xD2E0  # mixed into the run seed: masks and directions are their own random stream


class ZerothOrderStep(StepStrategy):
    """One zeroth-order (or, for the baseline, first-order) update per batch around a plain base optimizer."""

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        estimator: str,
        mu: float,
        queries: int | None,
        sparsity: float,
        mask_interval: int,
        seed: int,
        grad_clip: float | None = None,
    ) -> None:
        self.optimizer, self.estimator, self.mu, self.queries = optimizer, estimator, mu, queries
        self.sparsity, self.mask_interval, self.grad_clip = sparsity, mask_interval, grad_clip
        self.generator = seeded_generator(int(seed), ZO_STREAM)
        self.masks: list[Tensor | None] | None = None
        self.mask_period = -1
        self.last_queries = 0  # loss queries of the last step, base included (0 for first_order)

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        if backend.grad_scaler is not None or backend.world_size > 1:
            raise ConfigError(
                "the zeroth-order step runs in one process without fp16 loss scaling; "
                "use hardware.devices=1 and fp32 or bf16 (hardware.precision)"
            )
        inputs, targets, _ = batch
        params = [p for p in optimizer_params(self.optimizer) if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        if self.estimator == "first_order":
            with backend.autocast():
                logits = backend.model(inputs)
                loss = backend.loss(logits, targets)
            backend.backward(loss)
            queries = 0
        else:
            loss, logits, queries = self._estimate(backend, inputs, targets, params, epoch)
        self.last_queries = queries
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        return StepOutput(loss.detach(), logits.detach(), metrics)

    def _estimate(
        self, backend: TrainingBackend, inputs: Tensor, targets: Tensor, params: list[Tensor], epoch: int
    ) -> tuple[Tensor, Tensor, int]:
        """Write the estimate into p.grad; return the base loss, its logits and the queries spent (base included)."""
        masks = self._masks_for(params, epoch)

        def loss_at() -> Tensor:
            with backend.autocast():
                return backend.loss(backend.model(inputs), targets)

        with torch.no_grad():
            with backend.autocast():
                logits = backend.model(inputs)
                loss = backend.loss(logits, targets)
            base = loss.detach()
            buffers = snapshot_norm_buffers(backend.model)
            if self.estimator == "cge":
                spent = active_count(params, masks)
                grads = cge(loss_at, params, self.mu, base, masks)
            else:
                spent = self.queries if self.queries is not None else active_count(params, masks)
                grads = rge(loss_at, params, self.mu, base, masks, spent, self.generator)
            restore_norm_buffers(backend.model, buffers)
        for param, grad in zip(params, grads):
            param.grad = grad
        return loss, logits, spent + 1

    def _masks_for(self, params: list[Tensor], epoch: int) -> list[Tensor | None]:
        period = epoch // self.mask_interval
        if self.masks is None or period != self.mask_period:
            self.masks, self.mask_period = random_masks(params, self.sparsity, self.generator), period
        return self.masks

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "masks": self.masks, "mask_period": self.mask_period}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
            self.masks, self.mask_period = state["masks"], state["mask_period"]


class DZKnobs(OpenSection):
    """The optimizer keys this step reads beside ``base`` (values: configs/optimizer/deepzero.yaml, read as given)."""

    estimator: Literal[ESTIMATORS]
    mu: PosFloat  # the finite-difference step (official 5e-3)
    queries: PosInt | None  # RGE directions per step; null: as many as CGE's active coordinates
    sparsity: Fraction  # masked share of each weight tensor (0: dense)
    mask_interval: PosInt  # epochs between mask draws


def validate(cfg) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) before the run has a folder."""
    check_section(cfg, "optimizer", DZKnobs)
    refuse_micro_batches(int(cfg.train.accumulate), "zeroth-order")
    if int(cfg.hardware.devices) * int(cfg.hardware.num_nodes) != 1:
        raise InvalidConfigError(
            "hardware.devices",
            "the zeroth-order step runs in one process",
            "set hardware.devices=1 and hardware.num_nodes=1",
        )


def build_zo_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """The zeroth-order step on the ``optimizer`` node: ``base`` and the DZKnobs (checked by validate first)."""
    refuse_micro_batches(accumulate, "zeroth-order")
    optimizer = build_base_optimizer(cfg, model)
    step = ZerothOrderStep(
        optimizer,
        estimator=str(cfg.estimator),
        mu=float(cfg.mu),
        queries=cfg.queries,
        sparsity=float(cfg.sparsity),
        mask_interval=cfg.mask_interval,
        seed=torch.initial_seed(),
        grad_clip=grad_clip,
    )
    return optimizer, step


build_zo_step.validate = validate
