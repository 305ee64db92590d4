"""The paper's toy linear forecasting problem (official run.py, dataset `toy`; re-implemented): every channel's
look-back window x_c in R^L is mapped by one W in R^{L x H} shared by all channels, y_c = x_c W + noise, with x, W
and the noise i.i.d. N(0, 1) (noise scaled by `noise_std`). The true W is in the model class of the linear head
(attention off, or A X W_V = 0), and its test MSE is the noise variance: the oracle the claims compare with.
`dataset=samformer_toy`; stored B x D x L inputs and B x D x H targets, raw (no standardisation, as the code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optrepro.data.splits import ArraySplits


def linear_problem(
    n: int, weights: np.ndarray, channels: int, noise_std: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(n x D x L inputs, n x D x H targets = inputs @ W + noise_std * N(0, 1)), float32."""
    x = rng.standard_normal((n, channels, weights.shape[0]))
    y = x @ weights + noise_std * rng.standard_normal((n, channels, weights.shape[1]))
    return x.astype(np.float32), y.astype(np.float32)


def oracle_mse(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, weights: np.ndarray) -> float:
    """Mean squared error of the true map's forecast x @ W: the noise variance in expectation."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.mean((y - x @ weights) ** 2))


def draw_toy(dataset_cfg) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(W, train, test) from `data_seed`: W first, then the training and the test windows."""
    rng = np.random.default_rng(int(dataset_cfg.data_seed))
    weights = rng.standard_normal((int(dataset_cfg.length), int(dataset_cfg.horizon)))

    def draw(n):
        return linear_problem(n, weights, int(dataset_cfg.channels), float(dataset_cfg.noise_std), rng)

    return weights, draw(int(dataset_cfg.n_train)), draw(int(dataset_cfg.n_test))


def load_toy(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Built in memory (knobs in configs/dataset/samformer_toy.yaml, checked by the task before any work)."""
    _, (x_train, y_train), (x_test, y_test) = draw_toy(dataset_cfg)
    return ArraySplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
        int(dataset_cfg.horizon),
        str(dataset_cfg.name),
        (0.0,),
        (1.0,),
    )
