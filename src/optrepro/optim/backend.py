"""The boundary between a step strategy and the training loop around it.

A strategy (one SGD step, one SAM step, ...) needs a handful of services from the
loop: forward under autocast, a scaled backward, DDP's ``no_sync``, an explicit
gradient all-reduce and a hook that performs the parameter update. Lightning and a
bare PyTorch loop both provide them through :class:`TrainingBackend`, so the
strategies are written and tested once.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import ContextManager, NamedTuple, Protocol, runtime_checkable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.amp import GradScaler
from torch.nn.parallel import DistributedDataParallel

Batch = tuple[Tensor, Tensor, Tensor]


class StepOutput(NamedTuple):
    """What one training step reports to the loop; every tensor is detached."""

    loss: Tensor
    logits: Tensor
    metrics: dict[str, Tensor]


@runtime_checkable
class TrainingBackend(Protocol):
    """What a :class:`StepStrategy` needs from the loop around it."""

    model: nn.Module
    world_size: int
    grad_scaler: GradScaler | None

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor: ...

    def autocast(self) -> ContextManager: ...

    def backward(self, loss: Tensor) -> None: ...

    def no_sync(self) -> ContextManager: ...

    def all_reduce_grads(self, params: Iterable[Tensor]) -> None: ...

    def apply_update(self, step_fn: Callable[[], None]) -> None: ...


class StepStrategy(ABC):
    """One optimizer step on one batch: owns zero_grad, passes, clipping and the update."""

    @abstractmethod
    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        """Run the passes for ``batch`` and update the parameters once."""

    def state_dict(self) -> dict:
        """State beyond the optimizer's that must survive a checkpoint (none by default)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (nothing by default)."""


def distributed_world_size() -> int:
    """Number of processes in the default group, 1 outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class LocalBackend:
    """A plain-PyTorch :class:`TrainingBackend` for bare loops and tests.

    ``model`` may be wrapped in torch DDP; then ``no_sync`` is DDP's own, so a
    forward and backward inside it skip the gradient all-reduce.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
        autocast_dtype: torch.dtype | None = None,
        device_type: str = "cpu",
        grad_scaler: GradScaler | None = None,
    ) -> None:
        self.model = model
        self.world_size = distributed_world_size()
        self.grad_scaler = grad_scaler
        self._loss_fn = loss_fn
        self._autocast_dtype = autocast_dtype
        self._device_type = device_type

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return self._loss_fn(logits, targets)

    def autocast(self) -> ContextManager:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self._device_type, dtype=self._autocast_dtype)

    def backward(self, loss: Tensor) -> None:
        if self.grad_scaler is not None:
            loss = self.grad_scaler.scale(loss)
        loss.backward()

    def no_sync(self) -> ContextManager:
        if isinstance(self.model, DistributedDataParallel):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def all_reduce_grads(self, params: Iterable[Tensor]) -> None:
        all_reduce_mean_grads(params)

    def apply_update(self, step_fn: Callable[[], None]) -> None:
        step_fn()


def all_reduce_mean_grads(params: Iterable[Tensor]) -> None:
    """Average ``.grad`` over all ranks in one flat all-reduce (no-op on one process)."""
    world_size = distributed_world_size()
    if world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
