"""The CrAM step (Peste et al., ICLR 2023, arXiv 2207.14200):
``optimizer.step: reproductions.cram.step:build_cram_step``.

One update on a batch with clean weights ``w`` and loss ``f``:

1. clean pass: ``g = grad f(w)`` (the loss and logits the step reports are this pass's, as for SAM);
2. perturb: ``w~ = w + rho * g`` (``normalize: true``: ``rho * g / ||g||`` as SAM; the official TopkCrAM default
   ``grad_norm=False`` does not normalize);
3. compress: ``c = C_s(w~)``, global top-k magnitude pruning (``reproductions/cram/pruning.py``) at a sparsity
   ``s`` drawn uniformly from ``sparsities`` for each step (CrAM-Multi; one entry: CrAM-k);
4. second pass at ``c``: ``g_c = grad f(c)``; with ``sparse_grad`` the gradient is multiplied by the pruning mask
   (official ``sparse_grad=True``, the paper's recommended CrAM+ variant);
5. the update direction is ``g_c`` (CrAM) or ``g_c + g`` (CrAM+, ``plus: true``), applied at the clean weights ``w``
   by the base optimizer (SGD with momentum; its L2 weight decay adds ``wd * w`` once, at ``w``).

BatchNorm running statistics are those of the clean pass (snapshot before pass 2, restored after; the official
code freezes them with momentum 0 instead). Micro-batches (``accumulate``) are accumulated in each pass before
the single perturbation. Under DDP the clean gradients are all-reduced before the perturbation, so every rank
perturbs and prunes the same weights (the mask is then the same everywhere). fp16 loss scaling is not supported
(a clear error); bf16 autocast and fp32 are.

The sparsity sampler is a CPU generator seeded from the run seed (``torch.initial_seed()`` when the step is
built, after ``seed_everything``); its state is part of the strategy's checkpoint state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from pydantic import Field
from torch.optim import Optimizer

from optrepro.config_schema import Fraction, NonNegFloat, OpenSection
from optrepro.data.seeds import seeded_generator
from optrepro.errors import ConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.factory import build_base_optimizer, validated_on_stand_in
from optrepro.optim.standard import (
    batch_rows,
    batch_total,
    finish_step,
    forward_loss,
    optimizer_params,
    split_batch,
    sync_on_last,
    weighted,
)
from optrepro.optim.two_pass import load_grads
from reproductions.cram.pruning import apply_masks, check_sparsity, global_magnitude_masks

SPARSITY_STREAM = 0xC4A3  # mixed into the run seed: the sparsity draws are their own random stream


class CrAMStep(StepStrategy):
    """One CrAM / CrAM+ update per batch around a plain base optimizer."""

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        rho: float,
        sparsities: Sequence[float],
        plus: bool = True,
        sparse_grad: bool = True,
        normalize: bool = False,
        seed: int = 0,
        accumulate: int = 1,
        grad_clip: float | None = None,
        eps: float = 1e-12,
    ) -> None:
        if not rho >= 0.0:
            raise ValueError(f"CrAM needs rho >= 0, got {rho}")
        if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Sequence) or len(sparsities) == 0:
            raise ValueError(f"CrAM needs a non-empty list of sparsities in [0, 1), got {sparsities!r}")
        self.sparsities = [check_sparsity(s, name=f"optimizer.sparsities[{i}]") for i, s in enumerate(sparsities)]
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        self.optimizer = optimizer
        self.rho, self.plus, self.sparse_grad, self.normalize, self.eps = float(rho), plus, sparse_grad, normalize, eps
        self.accumulate, self.grad_clip = accumulate, grad_clip
        self.generator = seeded_generator(int(seed), SPARSITY_STREAM)

    def draw_sparsity(self) -> float:
        index = int(torch.randint(len(self.sparsities), (1,), generator=self.generator))
        return self.sparsities[index]

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        if backend.grad_scaler is not None:
            raise ConfigError("the CrAM step does not support fp16 loss scaling; use fp32 or bf16 (hardware.precision)")
        optimizer = self.optimizer
        params = optimizer_params(optimizer)
        chunks = split_batch(batch, self.accumulate)
        optimizer.zero_grad(set_to_none=True)

        clean_losses, clean_logits = [], []
        with backend.no_sync():
            for chunk in chunks:
                loss, logits = forward_loss(backend, chunk)
                backend.backward(weighted(loss, chunk.weight))
                clean_losses.append(weighted(loss.detach(), chunk.weight))
                clean_logits.append(logits.detach())
        backend.all_reduce_grads(params)

        with torch.no_grad():
            active = [p for p in params if p.grad is not None]
            clean_weights = [p.detach().clone() for p in active]
            clean_grads = [p.grad.detach().clone() for p in active] if self.plus else None
            scale = self.rho
            if self.normalize:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in active]))
                scale = self.rho / (float(norm) + self.eps)
            for param in active:
                param.add_(param.grad, alpha=scale)
            sparsity = self.draw_sparsity()
            prunable = [p for p in active if p.dim() > 1]
            masks = global_magnitude_masks(prunable, sparsity)
            apply_masks(prunable, masks)
        load_grads(params, None)

        norm_buffers = snapshot_norm_buffers(backend.model)
        compressed_losses = []
        for chunk, sync_context in sync_on_last(backend, chunks):
            with sync_context:
                loss, _ = forward_loss(backend, chunk)
                backend.backward(weighted(loss, chunk.weight))
            compressed_losses.append(weighted(loss.detach(), chunk.weight))
        restore_norm_buffers(backend.model, norm_buffers)

        with torch.no_grad():
            if self.sparse_grad:
                for param, mask in zip(prunable, masks):
                    if param.grad is not None:
                        param.grad.mul_(mask.to(param.grad.dtype))
            torch._foreach_copy_(active, clean_weights)
            if clean_grads is not None:
                for param, grad in zip(active, clean_grads):
                    if param.grad is None:
                        param.grad = grad
                    else:
                        param.grad.add_(grad)

        metrics = finish_step(backend, optimizer, self.grad_clip)
        metrics["compressed_loss"] = batch_total(compressed_losses)
        metrics["cram_sparsity"] = torch.tensor(sparsity)
        return StepOutput(batch_total(clean_losses), batch_rows(clean_logits), metrics)

    def state_dict(self) -> dict:
        return {"sparsity_generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "sparsity_generator" in state:
            self.generator.set_state(state["sparsity_generator"])


class CrAMKnobs(OpenSection):
    """The optimizer keys the CrAM step reads (values: configs/optimizer/cram.yaml)."""

    rho: NonNegFloat
    sparsities: Annotated[list[Fraction], Field(min_length=1)]
    plus: bool
    sparse_grad: bool
    normalize: bool


@validated_on_stand_in(CrAMKnobs)
def build_cram_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer`` node: ``base`` (a Hydra partial of the base optimizer) and the CrAMKnobs."""
    sparsities = [float(s) for s in cfg.sparsities]
    optimizer = build_base_optimizer(cfg, model)
    try:
        strategy = CrAMStep(
            optimizer,
            rho=float(cfg.rho),
            sparsities=sparsities,
            plus=bool(cfg.plus),
            sparse_grad=bool(cfg.sparse_grad),
            normalize=bool(cfg.normalize),
            seed=torch.initial_seed(),
            accumulate=accumulate,
            grad_clip=grad_clip,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return optimizer, strategy
