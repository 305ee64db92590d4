"""The in-memory dataset every loader returns, and the facts the model builder needs from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ArraySplits:
    """Train and test tensors of one dataset, kept whole so they can live on the training device.

    Images are uint8 N x C x H x W (normalized per batch on the device); vectors are float32 N x D.
    `mean`/`std` hold one value per channel (images, in [0, 1] units) or per feature (vectors).
    `y_train_clean` is set when label noise replaced `y_train`, so the flipped fraction can be recorded.
    `eval_split` names what `x_test`/`y_test` hold: the test set, or a validation split of the training set
    (data.validation); runs log their evaluation metrics under that name (`test/acc`, `val/acc`).
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    y_train_clean: Tensor | None = None
    eval_split: str = "test"

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(
                f"{self.name}: inputs and labels differ in length "
                f"(train {len(self.x_train)} vs {len(self.y_train)}, test {len(self.x_test)} vs {len(self.y_test)})"
            )

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4

    @property
    def num_train(self) -> int:
        return len(self.y_train)

    @property
    def noisy_label_fraction(self) -> float:
        """Fraction of training labels that differ from the clean ones (0.0 without label noise)."""
        if self.y_train_clean is None:
            return 0.0
        return (self.y_train != self.y_train_clean).double().mean().item()


def dataset_info(splits: ArraySplits) -> tuple[int, tuple[int, ...]]:
    """(num_classes, input_shape of one sample) for building a model that fits the data."""
    return splits.num_classes, tuple(splits.x_train.shape[1:])


def channel_stats(images: Tensor, chunk: int = 1024) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units, chunked to avoid one big float copy."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.float64).div_(255.0)
        total += block.sum(dim=(0, 2, 3))
        total_sq += block.square().sum(dim=(0, 2, 3))
    count = images.numel() / channels
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def feature_stats(vectors: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and std of float vectors (std floored so constant features do not divide by 0)."""
    return tuple(vectors.mean(0).tolist()), tuple(vectors.std(0).clamp_min(1e-6).tolist())
