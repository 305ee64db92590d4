"""Two moons made linearly separable along one coordinate (Pezeshki et al., NeurIPS 2021, "Gradient Starvation").

The setting of the paper's two-moons figures as built by the official scripts (Figure_1/moon_fig_1.py and
Figure_3/moon_fig_3.py of github.com/mpezeshki/Gradient_Starvation; re-implemented here, not copied):

1. sklearn ``make_moons(n_samples, noise, random_state=seed)`` (labels 0 / 1; s = 2y - 1 in {-1, +1});
2. shift the points by (-0.5, -0.3 s), then center the second coordinate on its mean;
3. fold the second coordinate so that its sign is -s (class 1 below zero, class 0 above), then push every point
   a further ``margin`` away from zero (``margin`` > 0: a gap of width 2 * margin, the classes are linearly
   separable along that coordinate alone; < 0: they overlap);
4. swap the two coordinates: feature 0 is the folded, linearly separating one (horizontal in the plots),
   feature 1 keeps the moon shape (vertical).

A network that uses feature 0 alone draws a nearly straight vertical line through the narrow gap; one that
also uses the moon shape can place a curved boundary far from most points. The training set uses
``random_state = data_seed``, the test set ``random_state = test_seed`` (fixed per dataset, not per run seed).
``mean`` = 0 and ``std`` = 1, so the loader feeds the raw coordinates to the network, as the official code does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_moons

from optrepro.data.splits import ArraySplits


def two_moons_points(n_samples: int, noise: float, margin: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x float64 (n, 2), y int64 (n,)) of the separable two-moons construction above."""
    x, y = make_moons(n_samples=int(n_samples), noise=float(noise), random_state=int(seed))
    sign = 2.0 * y - 1.0
    x = x - np.stack([np.full(len(y), 0.5), 0.3 * sign], axis=1)
    second = x[:, 1] - x[:, 1].mean()
    second = -np.abs(second) * sign - float(margin) * sign
    return np.stack([second, x[:, 0]], axis=1), y.astype(np.int64)


def load_two_moons(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Generated on the fly: ``n_train``, ``n_test``, ``noise``, ``margin``, ``data_seed``, ``test_seed``."""
    noise, margin = float(dataset_cfg.get("noise", 0.1)), float(dataset_cfg.get("margin", 0.1))
    x_train, y_train = two_moons_points(
        int(dataset_cfg.get("n_train", 300)), noise, margin, int(dataset_cfg.get("data_seed", 0))
    )
    x_test, y_test = two_moons_points(
        int(dataset_cfg.get("n_test", 300)), noise, margin, int(dataset_cfg.get("test_seed", 1))
    )
    return ArraySplits(
        torch.from_numpy(x_train).float(),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test).float(),
        torch.from_numpy(y_test),
        2,
        str(dataset_cfg.get("name", "two_moons")),
        (0.0, 0.0),
        (1.0, 1.0),
    )
