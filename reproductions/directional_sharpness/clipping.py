"""Coordinate-wise clipping (Pan & Li 2023): clip the largest fraction k of all coordinates to the threshold.

Over the gradients of the whole model (one global pool, not per tensor), sort |g_i| in descending order; the
threshold tau is the entry at 0-based index floor(k * d) of that list, and every coordinate becomes
clamp(g_i, -tau, tau). k = 0 leaves the gradient as it is. Only the few coordinates with the largest gradients
are shortened: the paper's reading is that they carry the bad directional sharpness of SGD's update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def clip_threshold(tensors: Sequence[Tensor], fraction: float) -> Tensor:
    """tau: the floor(fraction * d)-th largest |value| (0-based) over all `tensors` together (d values)."""
    flat = torch.cat([t.detach().reshape(-1).abs() for t in tensors])
    index = math.floor(fraction * flat.numel())
    if index >= flat.numel():
        return flat.new_zeros(())
    return torch.kthvalue(flat, flat.numel() - index).values  # ascending rank d - index = descending index


@torch.no_grad()
def clip_top_coordinates_(tensors: Sequence[Tensor], fraction: float) -> None:
    """Clip `tensors` in place to [-tau, tau] (tau from clip_threshold); fraction 0 changes nothing."""
    if fraction <= 0.0:
        return
    tau = clip_threshold(tensors, fraction)
    for tensor in tensors:
        tensor.clamp_(-tau, tau)
