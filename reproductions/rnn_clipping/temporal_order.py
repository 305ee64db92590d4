"""The temporal order problem (Hochreiter & Schmidhuber 1997, task 6a) as set up by Pascanu et al. (ICML 2013,
Section 4.1.1) and their code (tempOrder.py of github.com/pascanur/trainingRNNs; re-implemented, not copied);
`dataset=temporal_order` (configs/dataset/temporal_order.yaml here), loaded through its `dataset.loader`.

A sequence of ``length`` one-hot symbols over 6 channels: channels 0-1 are the relevant symbols {A, B}, 2-5 the
distractors {c, d, e, f}. Every position holds a uniformly drawn distractor except two: one position drawn
uniformly in [L/10, 2L/10) and one in [5L/10, 6L/10) (L/10 rounded down) hold A or B, each drawn uniformly.
The label is the order of the two, 0..3 = AA, BA, AB, BB (first symbol + 2 * second symbol), read at the end.

The paper draws a fresh minibatch for every update and tests on 10000 fresh sequences; here the training set is
a fixed draw of ``n_train`` sequences (the framework's epochs go over one stored set) and the test set ``n_test``
fresh ones, both from ``data_seed``. Stored as uint8 one-hot N x L x 6 (mean 0, std 1: the network sees 0/1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optrepro.data.splits import ArraySplits
from reproductions.rnn_clipping.sequences import load_sequences

SYMBOLS = 6  # A, B, then the four distractors
CLASSES = 4  # AA, BA, AB, BB


def temporal_order_sequences(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 one-hot n x length x 6 sequences, int64 labels 0..3) of the task above."""
    tenth = length // 10
    rows = np.arange(n)
    symbols = rng.integers(2, SYMBOLS, size=(n, length))
    first_at = rng.integers(tenth, 2 * tenth, size=n)
    second_at = rng.integers(5 * tenth, 6 * tenth, size=n)
    first, second = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)
    symbols[rows, first_at] = first
    symbols[rows, second_at] = second
    onehot = np.zeros((n, length, SYMBOLS), dtype=np.uint8)
    onehot[rows[:, None], np.arange(length)[None, :], symbols] = 1
    return onehot, (first + 2 * second).astype(np.int64)


def load_temporal_order(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Built in memory; knobs in configs/dataset/temporal_order.yaml."""
    return load_sequences(
        dataset_cfg, temporal_order_sequences, outputs=CLASSES, channels=SYMBOLS, name="temporal_order"
    )
