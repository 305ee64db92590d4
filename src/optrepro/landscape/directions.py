"""Random plotting directions with filter normalization (Li et al. 2018, Sec. 4).

A direction is a list of tensors, one per parameter of the model, in `model.parameters()` order. Each filter
of a direction (a slice along the first axis: one output channel of a convolution, one row of a linear layer)
is rescaled to the norm of the same filter in the weights, so a step of 1 moves every filter by its own size
and the scale invariance of ReLU/BatchNorm networks cannot make one network look flatter than another.
Parameters with at most one axis (biases, BatchNorm scale and shift) get a zero direction: they are not
perturbed, as in the authors' released code (`ignore=biasbn`, used for the paper's figures).
"""

from __future__ import annotations

import torch
from torch import Tensor


def filter_normalize(direction: list[Tensor], weights: list[Tensor]) -> list[Tensor]:
    """Each filter of `direction` scaled to the norm of its filter in `weights`; 0-D/1-D entries set to zero."""
    if len(direction) != len(weights):
        raise ValueError(f"direction has {len(direction)} tensors but the model has {len(weights)} parameters")
    normalized = []
    for d, w in zip(direction, weights):
        if d.shape != w.shape:
            raise ValueError(f"direction entry of shape {tuple(d.shape)} does not match weight {tuple(w.shape)}")
        if w.dim() <= 1:
            normalized.append(torch.zeros_like(w))
            continue
        d_norms = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        w_norms = w.flatten(1).norm(dim=1)
        scale = (w_norms / d_norms).reshape(-1, *([1] * (w.dim() - 1)))
        normalized.append(d * scale)
    return normalized


def random_direction(weights: list[Tensor], generator: torch.Generator) -> list[Tensor]:
    """A Gaussian direction drawn on the CPU (same draw on every device), filter-normalized against `weights`."""
    draws = [torch.randn(w.shape, generator=generator, dtype=w.dtype).to(w.device) for w in weights]
    return filter_normalize(draws, weights)
