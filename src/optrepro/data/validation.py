"""A validation split held out of the training set, for choosing a knob without looking at the test set.

SAM's protocol (Foret et al. 2021, Sec. 3.1, p. 5): rho is picked on "10% of the training set as a validation
set". `dataset.val_fraction` holds out that fraction of the (subset) training split, drawn per run seed, and the
run then evaluates on it instead of the test set (its metrics are `val/*`, never `test/*`). The split happens
before label noise, so validation labels stay clean, as in the paper's noisy-label tuning ("a random subset of
10%" of clean training images, Sec. 3.3).
"""

from __future__ import annotations

import dataclasses

import torch

from optrepro.data.seeds import seeded_generator
from optrepro.data.splits import ArraySplits

VALIDATION_STREAM = 0x7A11


def with_validation_split(splits: ArraySplits, fraction: float, seed: int) -> ArraySplits:
    """`splits` whose evaluation set is `fraction` of its training samples (drawn with the run `seed`), the rest
    kept for training; the test set is dropped so that nothing downstream can read it."""
    held_out = round(fraction * splits.num_train)
    if not 0 < held_out < splits.num_train:
        raise ValueError(
            f"dataset.val_fraction={fraction} holds out {held_out} of {splits.num_train} training "
            "samples; choose a fraction that leaves both parts non-empty, e.g. 0.1"
        )
    order = torch.randperm(splits.num_train, generator=seeded_generator(seed, VALIDATION_STREAM))
    val, train = order[:held_out].sort().values, order[held_out:].sort().values
    return dataclasses.replace(
        splits,
        x_train=splits.x_train[train],
        y_train=splits.y_train[train],
        x_test=splits.x_train[val],
        y_test=splits.y_train[val],
        eval_split="val",
    )
