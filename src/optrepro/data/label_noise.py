"""Symmetric label noise on the training labels, as in SAM's Table 4 (which follows Jiang et al.).

Definition used here (MentorNet, Jiang et al. 2018, Sec. 5.1, after Zhang et al. 2017): each training label is
independently, with probability p, replaced by a class drawn uniformly from ALL classes -- possibly its own.
So the expected fraction of wrong labels is p * (K - 1) / K (0.72 for p = 0.8 on CIFAR-10), and
`ArraySplits.noisy_label_fraction` records the fraction actually changed. The test set is never touched.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from optrepro.data.seeds import seeded_generator
from optrepro.data.splits import ArraySplits

# Mixed into the run seed so the noise stream is not the same stream as data order or augmentation.
NOISE_STREAM = 0x1AB3


def noisy_labels(labels: Tensor, num_classes: int, fraction: float, seed: int) -> Tensor:
    """New int64 labels: with probability `fraction`, a uniformly random class; deterministic per seed."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"dataset.label_noise must be a fraction in [0, 1], got {fraction}")
    generator = seeded_generator(seed, NOISE_STREAM)
    replace = torch.rand(len(labels), generator=generator) < fraction
    random_classes = torch.randint(num_classes, (len(labels),), generator=generator)
    return torch.where(replace, random_classes, labels.cpu()).to(torch.int64)


def with_label_noise(splits: ArraySplits, fraction: float, seed: int) -> ArraySplits:
    """Copy of `splits` with noisy training labels and the clean ones kept in `y_train_clean`."""
    if fraction == 0.0:
        return splits
    return dataclasses.replace(
        splits,
        y_train=noisy_labels(splits.y_train, splits.num_classes, fraction, seed),
        y_train_clean=splits.y_train,
    )
