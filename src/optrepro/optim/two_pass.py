"""The SAM-family step: clean pass, perturbation, perturbed pass, one update.

This is the one place where the two passes meet the training loop, so every
detail users get wrong with SAM lives (and is tested) here:

* Micro-batches (``accumulate``): pass-1 gradients are accumulated over all
  micro-batches before the single perturbation, pass-2 gradients likewise, so
  the step equals the large-batch SAM step.
* m-sharpness (``m_sharpness = m``): every sub-batch of ``m`` samples gets its
  own perturbation from its own gradient; the update uses the mean of the
  perturbed gradients. ``m`` must divide each per-device micro-batch.
* DDP: pass 1 (forward *and* backward) runs under ``no_sync``. With
  ``perturbation_sync="per_device"`` (the SAM paper's setting) each device
  perturbs with its own gradient; with ``"global"`` the pass-1 gradients are
  all-reduced first (with m-sharpness the group then spans the matching
  sub-batch on every device). Pass 2 syncs on its last backward only.
* BatchNorm running statistics are those of the clean pass: snapshot before
  pass 2, restored after it.
* fp16: the pass-1 gradients are unscaled by hand (``GradScaler.unscale_`` may
  run once per update and is kept for the final gradients). If they are not
  finite there is no perturbation, and the non-finite values are kept in
  ``.grad`` so that pass 2 adds onto them and the final all-reduce spreads them
  to every rank: all ranks then skip the same update in ``GradScaler.step`` (no
  extra collective, ranks stay in lockstep) and ``update`` runs once.
* Clipping applies to the final gradient, after pass 2 and after the sync.

The returned loss and logits are those of the *clean* pass (the loss at the
unperturbed weights, comparable with an SGD run); the perturbed loss is in
``metrics["perturbed_loss"]``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.amp import GradScaler

from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.sam import SAM
from optrepro.optim.standard import (
    Chunk,
    batch_rows,
    batch_total,
    finish_step,
    forward_loss,
    optimizer_params,
    split_batch,
    sync_on_last,
    weighted,
)

PERTURBATION_SYNC_CHOICES = ("per_device", "global")


def split_m_sharpness(chunks: list[Chunk], m: int) -> list[list[Chunk]]:
    """One perturbation group per sub-batch of ``m`` samples (weights stay shares of the batch)."""
    groups = []
    for chunk in chunks:
        size = len(chunk.targets)
        if size % m:
            raise ValueError(
                f"m_sharpness={m} must divide the per-device micro-batch size {size} (per-device batch / accumulate)"
            )
        for inputs, targets in zip(chunk.inputs.split(m), chunk.targets.split(m)):
            groups.append([Chunk(inputs, targets, chunk.weight * m / size)])
    return groups


def unscale_clean_grads(scaler: GradScaler | None, params: list[Tensor]) -> bool:
    """Divide the pass-1 gradients by the loss scale; returns whether they are all finite."""
    grads = [p.grad for p in params if p.grad is not None]
    if scaler is None or not grads:
        return True
    torch._foreach_mul_(grads, 1.0 / scaler.get_scale())
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


def load_grads(params: list[Tensor], values: list[Tensor | None] | None) -> None:
    """Overwrite ``.grad`` in place (DDP bucket views stay valid); ``None`` means zeros."""
    for index, param in enumerate(params):
        value = None if values is None else values[index]
        if value is None:
            if param.grad is not None:
                param.grad.zero_()
        elif param.grad is None:
            param.grad = value.clone()
        else:
            param.grad.copy_(value)


class TwoPassStep(StepStrategy):
    """One SAM-family update per batch for a :class:`~optrepro.optim.sam.SAM` optimizer."""

    def __init__(
        self,
        optimizer: SAM,
        *,
        accumulate: int = 1,
        grad_clip: float | None = None,
        perturbation_sync: str = "per_device",
        m_sharpness: int | None = None,
    ) -> None:
        if perturbation_sync not in PERTURBATION_SYNC_CHOICES:
            raise ValueError(
                f"unknown perturbation_sync {perturbation_sync!r}; valid: {', '.join(PERTURBATION_SYNC_CHOICES)}"
            )
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        if m_sharpness is not None and m_sharpness < 1:
            raise ValueError(f"m_sharpness must be a positive sample count or null, got {m_sharpness}")
        self.optimizer = optimizer
        self.accumulate = accumulate
        self.grad_clip = grad_clip
        self.perturbation_sync = perturbation_sync
        self.m_sharpness = m_sharpness

    def perturbation_groups(self, batch: Batch) -> list[list[Chunk]]:
        """Chunks that share one perturbation: all micro-batches, or each m-sample sub-batch."""
        micro_batches = split_batch(batch, self.accumulate)
        if self.m_sharpness is None:
            return [micro_batches]
        return split_m_sharpness(micro_batches, self.m_sharpness)

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        optimizer = self.optimizer
        params = optimizer_params(optimizer)
        groups = self.perturbation_groups(batch)
        optimizer.zero_grad(set_to_none=True)
        earlier_grads: list[Tensor | None] | None = None  # pass-2 gradients of the groups so far
        clean_losses, clean_logits, perturbed_losses = [], [], []
        for position, group in enumerate(groups):
            group_share = sum(chunk.weight for chunk in group)
            with backend.no_sync():
                for chunk in group:
                    loss, logits = forward_loss(backend, chunk)
                    backend.backward(weighted(loss, chunk.weight / group_share))
                    clean_losses.append(weighted(loss.detach(), chunk.weight))
                    clean_logits.append(logits.detach())
            if self.perturbation_sync == "global":
                backend.all_reduce_grads(params)
            if unscale_clean_grads(backend.grad_scaler, params):
                optimizer.perturb()
                load_grads(params, earlier_grads)
            norm_buffers = snapshot_norm_buffers(backend.model)
            last_group = position == len(groups) - 1
            passes = sync_on_last(backend, group) if last_group else ((c, backend.no_sync()) for c in group)
            for chunk, sync_context in passes:
                with sync_context:
                    loss, _ = forward_loss(backend, chunk)
                    backend.backward(weighted(loss, chunk.weight))
                perturbed_losses.append(weighted(loss.detach(), chunk.weight))
            restore_norm_buffers(backend.model, norm_buffers)
            optimizer.restore()
            if not last_group:
                earlier_grads = [None if p.grad is None else p.grad.clone() for p in params]
                load_grads(params, None)
        metrics = finish_step(backend, optimizer, self.grad_clip)
        metrics["perturbed_loss"] = batch_total(perturbed_losses)
        return StepOutput(batch_total(clean_losses), batch_rows(clean_logits), metrics)
