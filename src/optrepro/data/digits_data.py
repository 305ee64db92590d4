"""scikit-learn's 8x8 digits (bundled with the package, so always available offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from optrepro.data.splits import ArraySplits, channel_stats

NUM_TEST = 450
# Fixed, not the run seed: every run must be scored on the same test set.
SPLIT_SEED = 20240101


def load_digits_splits(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """1347/450 stratified split; pixel values 0..16 rescaled to uint8 0..255 like every other image set."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, bunch.target, test_size=NUM_TEST, stratify=bunch.target, random_state=SPLIT_SEED
    )
    x_train = torch.from_numpy(x_train)
    mean, std = channel_stats(x_train)
    return ArraySplits(
        x_train,
        torch.from_numpy(y_train).long(),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test).long(),
        10,
        "digits",
        mean,
        std,
    )
