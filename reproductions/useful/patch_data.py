"""`dataset=fast_slow_patches`: USEFUL's theory data model as vectors (own re-implementation; the paper's Definition
3.1 was read only through a secondary summary: a slow-learnable patch in every example, a stronger fast-learnable
patch in a fraction alpha of them, Gaussian noise patches).

Example i has label y in {0, 1} and sign s = 2y - 1, and `patches` patches of `dim` numbers, concatenated:
patch 0 is `beta_fast * s * v_fast` with probability `alpha` (else zeros), patch 1 is `beta_slow * s * v_slow`, the
rest are zeros; every patch then gets N(0, noise_std^2) noise. v_fast and v_slow are orthogonal unit vectors. A
network reads the strong fast feature first; the examples without it are learned only through the weak slow feature
(or by fitting their noise), which is where USEFUL's upsampling is meant to help. Every draw comes from `data_seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from optrepro.config_schema import NonNegFloat, OpenSection, PosInt, Probability, check_node
from optrepro.data.splits import ArraySplits


class PatchKnobs(OpenSection):
    """The dataset keys this loader reads beside the shared ones (values: configs/dataset/fast_slow_patches.yaml)."""

    n_train: Annotated[int, Field(ge=2)]
    n_test: PosInt
    dim: Annotated[int, Field(ge=2)]  # numbers per patch: room for the two orthogonal feature directions
    patches: Annotated[int, Field(ge=2)]  # patch 0 fast, patch 1 slow, the rest noise
    alpha: Probability  # fraction of examples with the fast feature
    beta_fast: NonNegFloat
    beta_slow: NonNegFloat
    noise_std: NonNegFloat


def check_knobs(dataset_cfg) -> PatchKnobs:
    """The loader's keys typed by PatchKnobs (one line: key, problem, fix); run by the config check before any work
    (load_fast_slow_patches.validate), and by the loader."""
    return check_node(dataset_cfg, "dataset", PatchKnobs)


def draw(n: int, rng: np.random.Generator, directions: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray]:
    """(float32 n x patches*dim inputs, int64 labels) of the construction above."""
    labels = rng.integers(0, 2, size=n)
    sign = (2 * labels - 1)[:, None].astype(np.float64)
    x = np.zeros((n, int(cfg.patches), int(cfg.dim)))
    has_fast = rng.random(n) < float(cfg.alpha)
    x[:, 0] = has_fast[:, None] * float(cfg.beta_fast) * sign * directions[0]
    x[:, 1] = float(cfg.beta_slow) * sign * directions[1]
    x += float(cfg.noise_std) * rng.standard_normal(x.shape)
    return x.reshape(n, -1).astype(np.float32), labels.astype(np.int64)


def load_fast_slow_patches(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """The `dataset.loader` of configs/dataset/fast_slow_patches.yaml; `data_dir` is unused (generated data)."""
    check_knobs(dataset_cfg)
    rng = np.random.default_rng(int(dataset_cfg.data_seed))
    directions, _ = np.linalg.qr(rng.standard_normal((int(dataset_cfg.dim), 2)))
    x_train, y_train = draw(int(dataset_cfg.n_train), rng, directions.T, dataset_cfg)
    x_test, y_test = draw(int(dataset_cfg.n_test), rng, directions.T, dataset_cfg)
    features = x_train.shape[1]
    return ArraySplits(
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
        num_classes=2,
        name="fast_slow_patches",
        mean=(0.0,) * features,
        std=(1.0,) * features,
    )


load_fast_slow_patches.validate = check_knobs
