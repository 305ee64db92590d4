"""The one loader of the paper's synthetic problems: train and test sequences drawn in memory from one seeded
generator (the test set follows the training set in the draw, as in the official code's separate draws)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from optrepro.data.splits import ArraySplits
from optrepro.errors import ConfigError

Draw = Callable[[int, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def load_sequences(dataset_cfg, draw: Draw, *, outputs: int, channels: int, name: str) -> ArraySplits:
    """`draw(n, length, rng) -> (inputs, targets)` for the training then the test set; knobs `length`, `n_train`,
    `n_test`, `data_seed` (configs/dataset/<name>.yaml)."""
    length, n_train, n_test = (int(dataset_cfg.get(k)) for k in ("length", "n_train", "n_test"))
    if length < 10:
        raise ConfigError(f"dataset.length={length}: the marked positions sit in tenths of the sequence; use >= 10")
    if n_train < 1 or n_test < 1:
        raise ConfigError(f"dataset.n_train={n_train}, dataset.n_test={n_test}: both must be >= 1")
    rng = np.random.default_rng(int(dataset_cfg.get("data_seed", 0)))
    x_train, y_train = draw(n_train, length, rng)
    x_test, y_test = draw(n_test, length, rng)
    return ArraySplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
        outputs,
        str(dataset_cfg.get("name", name)),
        (0.0,) * channels,
        (1.0,) * channels,
    )
