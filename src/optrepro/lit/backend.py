"""The TrainingBackend of a LightningModule in manual optimization.

Lightning's precision plugin already wraps `training_step` in autocast and owns the fp16 GradScaler,
so this backend forwards to it instead of adding a second layer of mixed-precision handling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ContextManager

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from optrepro.losses import LossFn
from optrepro.optim.backend import all_reduce_mean_grads

if TYPE_CHECKING:
    import lightning.pytorch as pl


class LightningBackend:
    def __init__(self, module: pl.LightningModule, label_smoothing: float = 0.0, loss_fn: LossFn | None = None) -> None:
        self._module = module
        self._label_smoothing = label_smoothing
        self._loss_fn = loss_fn  # the `loss` node (optrepro.builders.build_train_loss); None: softmax cross-entropy

    @property
    def model(self) -> nn.Module:
        return self._module

    @property
    def world_size(self) -> int:
        return self._module.trainer.world_size

    @property
    def grad_scaler(self):
        return getattr(self._module.trainer.precision_plugin, "scaler", None)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self._loss_fn is not None:
            return self._loss_fn(logits, targets)
        return F.cross_entropy(logits, targets, label_smoothing=self._label_smoothing)

    def autocast(self) -> ContextManager:
        return contextlib.nullcontext()  # the precision plugin autocasts the whole training_step

    def backward(self, loss: Tensor) -> None:
        self._module.manual_backward(loss)  # scales by the plugin's GradScaler under 16-mixed

    def no_sync(self) -> ContextManager:
        wrapped = self._module.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel):
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def all_reduce_grads(self, params: Iterable[Tensor]) -> None:
        all_reduce_mean_grads(params)

    def apply_update(self, step_fn: Callable[[], None]) -> None:
        # Going through Lightning's step hooks keeps trainer.global_step counting optimizer steps.
        optimizer = self._module.optimizers()
        optimizer._on_before_step()
        step_fn()
        optimizer._on_after_step()
