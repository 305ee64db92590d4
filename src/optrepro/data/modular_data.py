"""Modular arithmetic tables (grokking): every pair (a, b) with 0 <= a, b < p, label (a + b) mod p.

Inputs are the concatenated one-hot codes of a and b (float32 vectors of length 2p), as in the MLP
experiments of Prieto et al. 2025 ("Grokking at the Edge of Numerical Stability"). A fixed fraction of the
p^2 pairs is the training set, chosen by a fixed split seed (not the run seed), so every run sees the same
split. `mean` = 0 and `std` = 1 per feature, so the loader's standardization leaves the one-hot inputs as is.
"""

from __future__ import annotations

from pathlib import Path

import torch

from optrepro.data.splits import ArraySplits

OPERATIONS = {
    "add": lambda a, b, p: (a + b) % p,
    "subtract": lambda a, b, p: (a - b) % p,
    "multiply": lambda a, b, p: (a * b) % p,
}


def modular_table(p: int, operation: str = "add") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a, b, label) int64 tensors over all p^2 pairs, a-major order."""
    if operation not in OPERATIONS:
        raise ValueError(f"dataset.operation={operation!r}; allowed: {', '.join(OPERATIONS)}")
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    return a, b, OPERATIONS[operation](a, b, p)


def one_hot_pairs(a: torch.Tensor, b: torch.Tensor, p: int) -> torch.Tensor:
    """Concatenated one-hot codes [onehot(a), onehot(b)] as float32 (N, 2p)."""
    x = torch.zeros(len(a), 2 * p, dtype=torch.float32)
    rows = torch.arange(len(a))
    x[rows, a] = 1.0
    x[rows, p + b] = 1.0
    return x


def split_indices(num_samples: int, train_fraction: float, split_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded permutation: its first int(train_fraction * N) positions train, the rest test."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"dataset.train_fraction must be in (0, 1), got {train_fraction}")
    generator = torch.Generator().manual_seed(int(split_seed))
    order = torch.randperm(num_samples, generator=generator)
    num_train = int(train_fraction * num_samples)
    return order[:num_train], order[num_train:]


def load_modular(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Generated on the fly (no files): `modulus` p, `operation`, `train_fraction`, `split_seed`."""
    p = int(dataset_cfg.get("modulus", 113))
    operation = str(dataset_cfg.get("operation", "add"))
    a, b, labels = modular_table(p, operation)
    x = one_hot_pairs(a, b, p)
    train, test = split_indices(
        len(labels), float(dataset_cfg.get("train_fraction", 0.4)), int(dataset_cfg.get("split_seed", 42))
    )
    features = 2 * p
    return ArraySplits(
        x[train],
        labels[train],
        x[test],
        labels[test],
        p,
        str(dataset_cfg.get("name", "modular_addition")),
        (0.0,) * features,
        (1.0,) * features,
    )
