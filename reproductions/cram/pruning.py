"""Global magnitude pruning and BatchNorm re-tuning: the compression operator of CrAM and the one-shot test.

CrAM (Peste et al., ICLR 2023, arXiv 2207.14200) compresses with top-k magnitude pruning over all weights
together ("global"); the official code (IST-DASLab/CrAM, ``utils/pruning_utils.py``) prunes every parameter with
more than one dimension (convolution kernels and linear weights, the first and the last layer included) and
leaves biases and BatchNorm parameters dense. The same set is pruned here.

The mask keeps exactly ``k = ceil(n * (1 - sparsity))`` of the ``n`` prunable weights, those of largest
magnitude; among weights of equal magnitude at the cut the one with the lower position (parameters in model
order, each flattened row-major) is kept. The official code instead keeps ``|w| > t`` for the k-th largest
magnitude ``t``, which prunes every weight tied with ``t`` (more than the target when there are ties, e.g.
weights already zero); with distinct magnitudes both give the same mask.

BatchNorm re-tuning (the paper's "BNT"; official ``utils/eval_utils.py: fix_bn_stats``): after pruning, the
running statistics are reset and re-estimated with momentum 0.1 from forward passes in train mode over a number
of training batches, without gradients. Nothing else changes: weights, biases and BN affine parameters stay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

BN_RETUNE_MOMENTUM = 0.1  # official fix_bn_stats sets this on every BN layer before re-estimating


def check_sparsity(sparsity: float, *, name: str = "sparsity") -> float:
    """A fraction of weights to remove, in [0, 1); anything else is a clear error."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}")
    value = float(sparsity)
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ValueError(
            f"{name} must be a fraction of weights to prune in [0, 1) (e.g. 0.9 for 90%), got {sparsity!r}"
        )
    return value


def prunable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The weights magnitude pruning acts on: every parameter with more than one dimension, in model order."""
    return [p for p in model.parameters() if p.dim() > 1]


@torch.no_grad()
def global_magnitude_masks(params: list[Tensor], sparsity: float) -> list[Tensor]:
    """One boolean mask per tensor keeping the ``ceil(n * (1 - sparsity))`` largest magnitudes over all of them.

    Ties at the cut keep the lower global position (a stable sort), so the count is exact and deterministic.
    """
    sparsity = check_sparsity(sparsity)
    if not params:
        raise ValueError("no prunable parameters: the model has no weight with more than one dimension")
    flat = torch.cat([p.detach().abs().reshape(-1).float() for p in params])
    keep = math.ceil(flat.numel() * (1.0 - sparsity))
    order = torch.argsort(flat, descending=True, stable=True)
    kept = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    kept[order[:keep]] = True
    masks, offset = [], 0
    for param in params:
        masks.append(kept[offset : offset + param.numel()].view_as(param))
        offset += param.numel()
    return masks


@torch.no_grad()
def apply_masks(params: list[Tensor], masks: list[Tensor]) -> None:
    for param, mask in zip(params, masks):
        param.mul_(mask.to(param.dtype))


@torch.no_grad()
def prune_global_magnitude(model: nn.Module, sparsity: float) -> list[Tensor]:
    """Zero the smallest-magnitude prunable weights of ``model`` in place; returns the masks."""
    params = prunable_parameters(model)
    masks = global_magnitude_masks(params, sparsity)
    apply_masks(params, masks)
    return masks


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@torch.no_grad()
def retune_batchnorm(model: nn.Module, batches: Iterable[Tensor], num_batches: int) -> int:
    """Reset every BatchNorm layer's running statistics and re-estimate them from ``num_batches`` input batches.

    Forward passes in train mode, momentum 0.1, no gradients; the model is left in eval mode. Returns the number
    of batches used (fewer when ``batches`` runs out). Parameters are untouched.
    """
    if num_batches < 1:
        raise ValueError(f"BatchNorm re-tuning needs at least one batch, got num_batches={num_batches}")
    layers = batchnorm_layers(model)
    saved_momentum = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = BN_RETUNE_MOMENTUM
    model.train()
    used = 0
    try:
        for inputs in batches:
            if used == num_batches:
                break
            model(inputs)
            used += 1
    finally:
        for layer, momentum in zip(layers, saved_momentum):
            layer.momentum = momentum
        model.eval()
    return used
