"""Nested, class-balanced training subsets and random labels for the EMC search.

Every n of one search trains on the first n samples of one order, so the subsets are nested (the shared notes'
trap: EMC must not jump with a fresh draw per n) and every prefix is class-balanced: the order takes the classes in
turn, each class in a seeded random order.
"""

from __future__ import annotations

import torch
from torch import Tensor


def balanced_order(labels: Tensor, seed: int) -> Tensor:
    """Indices of `labels` with the classes taken in turn (class 0's first sample, class 1's first, ...)."""
    generator = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
    per_class = [idx[torch.randperm(len(idx), generator=generator)] for idx in per_class]
    order = []
    for rank in range(max(len(idx) for idx in per_class)):
        order.extend(int(idx[rank]) for idx in per_class if rank < len(idx))
    return torch.tensor(order, dtype=torch.long)


def random_labels(count: int, num_classes: int, seed: int) -> Tensor:
    """Labels drawn uniformly from the classes, independently of the inputs (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(num_classes, (count,), generator=generator)
