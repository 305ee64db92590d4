"""A fixed subset of the training split, for CPU tiers that scale a paper's regime down.

The subset is drawn once with a fixed seed (`dataset.train_subset_seed`, not the run seed), so every run and
every arm of a claim trains on the same samples and seeds differ only in initialization, order and noise.
"""

from __future__ import annotations

import dataclasses

import torch

from optrepro.data.seeds import seeded_generator
from optrepro.data.splits import ArraySplits

SUBSET_STREAM = 0x5B5E


def with_train_subset(splits: ArraySplits, size: int, subset_seed: int = 0) -> ArraySplits:
    if not 0 < size <= splits.num_train:
        raise ValueError(
            f"dataset.train_subset={size} must be in 1..{splits.num_train} (the size of {splits.name}'s training split)"
        )
    keep = torch.randperm(splits.num_train, generator=seeded_generator(subset_seed, SUBSET_STREAM))[:size].sort().values
    return dataclasses.replace(splits, x_train=splits.x_train[keep], y_train=splits.y_train[keep])
