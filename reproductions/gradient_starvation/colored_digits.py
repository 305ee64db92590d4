"""Colored digits: IRM's Colored-MNIST construction (used by Gradient Starvation's Table 1) on offline digit images;
`dataset=colored_digits` (configs/dataset/colored_digits.yaml here), loaded through its `dataset.loader`.

The construction of Arjovsky et al.'s Colored MNIST as run by the official Gradient Starvation script
(Figure_4_and_table_1/cmnist.py of github.com/mpezeshki/Gradient_Starvation; re-implemented here, not copied):

1. binary label from the digit: 1 for digits 0-4, 0 for 5-9; then flip every label with probability
   ``label_flip`` (0.25: the digit's shape predicts the label 75% of the time, in train and test alike);
2. colour = label, flipped with probability e of the sample's environment (``color_flip_train``: one e per
   training environment, the training images split evenly between them; ``color_flip_test`` for the test set);
3. image = two channels (red, green), the grey digit in the channel of its colour, zeros in the other.

With e = 0.2 / 0.1 in training, colour agrees with the label 85% of the time, more than shape's 75%; at test
(e = 0.9) it agrees 10% of the time, so a network that relies on colour scores far below 50%.

MNIST is not available offline, so ``base`` picks the grey images: ``digits`` (scikit-learn's bundled 8x8 digits,
1797 images) or ``fashion_mnist`` (class index < 5 -> label 1, like the digit rule). All images of the base (its
own train and test parts pooled) are shuffled with ``data_seed``; the first ``n_test`` form the test set, the
next ``n_train`` (null: all the rest) the training set. ``downsample`` keeps every k-th row and column (the official
script halves MNIST to 14x14). Every random draw comes from ``data_seed``. ``mean`` = 0 and ``std`` = 1, so the
network sees pixel / 255, as in the official script.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

from optrepro.data.fashion_mnist_data import load_fashion_mnist
from optrepro.data.splits import ArraySplits
from optrepro.errors import ConfigError, UnknownChoiceError

BASES = ("digits", "fashion_mnist")


def grey_images(base: str, dataset_cfg, data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x H x W, int64 class index 0..9) of every image of `base`, its train and test parts pooled."""
    if base == "digits":
        bunch = load_digits()
        return np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8), bunch.target.astype(np.int64)
    if base == "fashion_mnist":
        splits = load_fashion_mnist({"path": dataset_cfg.get("path")}, data_dir)
        images = torch.cat([splits.x_train, splits.x_test])[:, 0].numpy()
        return images, torch.cat([splits.y_train, splits.y_test]).numpy()
    raise UnknownChoiceError("dataset.base", base, BASES)


def color_environment(
    images: np.ndarray, classes: np.ndarray, label_flip: float, color_flip: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N x 2 x H x W coloured images, int64 binary labels) of one environment (steps 1-3 above)."""
    labels = (classes < 5).astype(np.int64) ^ (rng.random(len(classes)) < label_flip)
    colors = labels ^ (rng.random(len(classes)) < color_flip)
    colored = np.zeros((len(images), 2, *images.shape[1:]), dtype=np.uint8)
    colored[np.arange(len(images)), colors] = images
    return colored, labels


def check_probability(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"dataset.{name}={value} is not a probability: set it in [0, 1]")
    return value


def colored_digits_splits(
    images: np.ndarray,
    classes: np.ndarray,
    *,
    n_test: int,
    n_train: int | None,
    label_flip: float,
    color_flip_train: Sequence[float],
    color_flip_test: float,
    downsample: int,
    data_seed: int,
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((x_train, y_train), (x_test, y_test)) of the construction above, from grey `images` and their `classes`."""
    label_flip = check_probability("label_flip", label_flip)
    color_flip_test = check_probability("color_flip_test", color_flip_test)
    if isinstance(color_flip_train, (str, int, float)) or not len(color_flip_train):
        raise ConfigError(
            f"dataset.color_flip_train={color_flip_train!r}: give a list with one colour-flip "
            "probability per training environment, e.g. [0.2, 0.1]"
        )
    train_flips = [check_probability("color_flip_train", e) for e in color_flip_train]
    if int(downsample) < 1:
        raise ConfigError(f"dataset.downsample={downsample}: keep every k-th pixel row and column with k >= 1")
    available = len(images) - int(n_test)
    n_train = available if n_train is None else int(n_train)
    if int(n_test) < 1 or n_train < len(train_flips) or n_train > available:
        raise ConfigError(
            f"dataset.n_test={n_test}, dataset.n_train={n_train}: the base has {len(images)} images; "
            f"need n_test >= 1 and {len(train_flips)} <= n_train <= {len(images)} - n_test"
        )
    rng = np.random.default_rng(int(data_seed))
    order = rng.permutation(len(images))
    images = images[order][:, :: int(downsample), :: int(downsample)]
    classes = classes[order]
    test = color_environment(images[: int(n_test)], classes[: int(n_test)], label_flip, color_flip_test, rng)
    train_images, train_classes = (
        images[int(n_test) : int(n_test) + n_train],
        classes[int(n_test) : int(n_test) + n_train],
    )
    parts = np.array_split(np.arange(n_train), len(train_flips))
    envs = [
        color_environment(train_images[p], train_classes[p], label_flip, e, rng) for p, e in zip(parts, train_flips)
    ]
    train = (np.concatenate([x for x, _ in envs]), np.concatenate([y for _, y in envs]))
    return train, test


def load_colored_digits(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Built in memory from ``base``; knobs in configs/dataset/colored_digits.yaml."""
    base = str(dataset_cfg.get("base", "digits"))
    images, classes = grey_images(base, dataset_cfg, data_dir)
    (x_train, y_train), (x_test, y_test) = colored_digits_splits(
        images,
        classes,
        n_test=int(dataset_cfg.get("n_test", 450)),
        n_train=dataset_cfg.get("n_train"),
        label_flip=dataset_cfg.get("label_flip", 0.25),
        color_flip_train=dataset_cfg.get("color_flip_train", [0.2, 0.1]),
        color_flip_test=dataset_cfg.get("color_flip_test", 0.9),
        downsample=int(dataset_cfg.get("downsample", 1)),
        data_seed=int(dataset_cfg.get("data_seed", 0)),
    )
    return ArraySplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
        2,
        str(dataset_cfg.get("name", "colored_digits")),
        (0.0, 0.0),
        (1.0, 1.0),
    )
