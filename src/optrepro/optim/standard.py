"""One forward/backward per micro-batch, then one update: the SGD/AdamW step.

The micro-batching and the end of the step (unscale, clip after the last
backward and after DDP sync, update, scaler update) are shared with
:class:`~optrepro.optim.two_pass.TwoPassStep`, so SGD and SAM runs differ only
in the SAM passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend


class Chunk(NamedTuple):
    """Part of a batch; ``weight`` is its share of the samples it is averaged over."""

    inputs: Tensor
    targets: Tensor
    weight: float


def split_batch(batch: Batch, pieces: int) -> list[Chunk]:
    """Split ``batch`` into ``pieces`` micro-batches weighted by size (so weighted losses sum to the mean)."""
    inputs, targets, _ = batch
    total = len(targets)
    if not 1 <= pieces <= total:
        raise ValueError(f"cannot split a batch of {total} samples into {pieces} micro-batches")
    if pieces == 1:
        return [Chunk(inputs, targets, 1.0)]
    return [
        Chunk(x, y, len(y) / total)
        for x, y in zip(torch.tensor_split(inputs, pieces), torch.tensor_split(targets, pieces))
    ]


def weighted(loss: Tensor, weight: float) -> Tensor:
    """``loss * weight``; a whole batch (weight 1) skips the multiply, equal to the last bit, because each tensor op
    costs a tiny model's step a few microseconds (benchmarks/framework_overhead.py)."""
    return loss if weight == 1.0 else loss * weight


def batch_total(losses: list[Tensor]) -> Tensor:
    """The sum of the micro-batches' weighted losses (one micro-batch: itself, no op)."""
    return losses[0] if len(losses) == 1 else torch.stack(losses).sum()


def batch_rows(parts: list[Tensor]) -> Tensor:
    """The micro-batches' rows (logits) back in batch order (one micro-batch: itself, no op)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def optimizer_params(optimizer: Optimizer) -> list[Tensor]:
    """All parameters the optimizer updates, in group order."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def forward_loss(backend: TrainingBackend, chunk: Chunk) -> tuple[Tensor, Tensor]:
    """Logits and mean loss of one chunk, under the backend's autocast."""
    with backend.autocast():
        logits = backend.model(chunk.inputs)
        loss = backend.loss(logits, chunk.targets)
    return loss, logits


def sync_on_last(
    backend: TrainingBackend, chunks: list[Chunk]
) -> Iterator[tuple[Chunk, contextlib.AbstractContextManager]]:
    """Pair each chunk with ``no_sync`` except the last, whose backward all-reduces the sum."""
    for position, chunk in enumerate(chunks):
        last = position == len(chunks) - 1
        yield chunk, contextlib.nullcontext() if last else backend.no_sync()


def finish_step(backend: TrainingBackend, optimizer: Optimizer, grad_clip: float | None) -> dict[str, Tensor]:
    """Unscale, clip, update through the backend and update the scaler once.

    With fp16 a non-finite gradient makes ``GradScaler.step`` skip the update and
    ``update`` lower the scale; the update still goes through
    ``backend.apply_update`` so the loop counts one step per batch either way.
    """
    scaler = backend.grad_scaler
    if scaler is not None:
        scaler.unscale_(optimizer)
    metrics: dict[str, Tensor] = {}
    if grad_clip is not None:
        grad_norm = torch.nn.utils.clip_grad_norm_(optimizer_params(optimizer), grad_clip)
        metrics["grad_norm"] = grad_norm.detach()
    if scaler is None:
        backend.apply_update(optimizer.step)
    else:
        backend.apply_update(lambda: scaler.step(optimizer))
        scaler.update()
    return metrics


class StandardStep(StepStrategy):
    """Plain step: ``accumulate`` micro-batches, DDP sync on the last backward, clip, update."""

    def __init__(self, optimizer: Optimizer, *, accumulate: int = 1, grad_clip: float | None = None) -> None:
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        self.optimizer = optimizer
        self.accumulate = accumulate
        self.grad_clip = grad_clip

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        self.optimizer.zero_grad(set_to_none=True)
        losses, logits = [], []
        for chunk, sync_context in sync_on_last(backend, split_batch(batch, self.accumulate)):
            with sync_context:
                loss, chunk_logits = forward_loss(backend, chunk)
                backend.backward(weighted(loss, chunk.weight))
            losses.append(weighted(loss.detach(), chunk.weight))
            logits.append(chunk_logits.detach())
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        return StepOutput(batch_total(losses), batch_rows(logits), metrics)
