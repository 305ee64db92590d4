"""The changed training distribution: the chosen examples appear `factor` times, every other example once."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from optrepro.data.splits import ArraySplits


def upsampled(splits: ArraySplits, indices: np.ndarray, factor: int) -> ArraySplits:
    """`splits` with `factor - 1` extra copies of the training examples at `indices` appended (test split kept)."""
    extra = torch.as_tensor(np.tile(np.asarray(indices, dtype=np.int64), factor - 1))

    def grown(tensor):
        return None if tensor is None else torch.cat([tensor, tensor[extra]])

    return dataclasses.replace(
        splits, x_train=grown(splits.x_train), y_train=grown(splits.y_train), y_train_clean=grown(splits.y_train_clean)
    )
