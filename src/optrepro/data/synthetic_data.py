"""Seeded synthetic classification data with a learnable rule (class-dependent means), for fast tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from optrepro.data.splits import ArraySplits, channel_stats, feature_stats


def load_synthetic(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Images (uint8) when `shape` is [C, H, W], vectors (float32) when it is [D].

    Seeded by `dataset.data_seed`, not the run seed, so every run sees the same train and test sets.
    """
    shape = tuple(int(s) for s in dataset_cfg.get("shape", (3, 8, 8)))
    num_classes = int(dataset_cfg.get("num_classes", 4))
    num_train = int(dataset_cfg.get("num_samples", 256))
    num_test = int(dataset_cfg.get("num_test", 128))
    generator = torch.Generator().manual_seed(int(dataset_cfg.get("data_seed", 0)))
    class_means = torch.randn((num_classes, *shape), generator=generator)
    x, y = sample_around_means(class_means, num_train + num_test, generator)
    if len(shape) == 3:
        x = (128 + 40 * x).round().clamp(0, 255).to(torch.uint8)
        mean, std = channel_stats(x[:num_train])
    elif len(shape) == 1:
        mean, std = feature_stats(x[:num_train])
    else:
        raise ValueError(f"synthetic: dataset.shape must be [C, H, W] or [D], got {list(shape)}")
    return ArraySplits(x[:num_train], y[:num_train], x[num_train:], y[num_train:], num_classes, "synthetic", mean, std)


def sample_around_means(class_means: Tensor, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    labels = torch.randint(len(class_means), (count,), generator=generator)
    noise = torch.randn((count, *class_means.shape[1:]), generator=generator)
    return class_means[labels] + noise, labels
