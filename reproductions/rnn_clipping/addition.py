"""The addition problem (Hochreiter & Schmidhuber 1997) as set up by Pascanu et al. (ICML 2013, Section 4.1.2) and
their code (addition.py of github.com/pascanur/trainingRNNs; re-implemented, not copied); `dataset=addition`
(configs/dataset/addition.yaml here), loaded through its `dataset.loader`.

A sequence of ``length`` steps with 2 input channels: channel 0 is a marker (0 everywhere except two positions,
where it is 1), channel 1 a number drawn uniformly in [0, 1) at every step. The first marker sits at a position
drawn uniformly in [0, L/10), the second in [L/10, L/2) (L/10 and L/2 rounded down, as the code's ``int(l*.1)``
and ``int(l*.4) + int(l*.1)``), so the two never coincide. The target, read from the last hidden state by a linear
output, is the mean of the two marked numbers, (a + b) / 2 in [0, 1) [repo] (the paper only names "the addition
problem"; the code's target is half the sum). Success (paper, p. 7-8): a sequence is "misclassified" when its
squared error is larger than .04; a run succeeds with under 1% misclassified out of 10000 fresh sequences.

Deviations from the code: every sequence has exactly ``length`` steps (the code draws one length per minibatch,
uniform in [L, 1.1 L), and places the markers from that length); the training set is a fixed draw of ``n_train``
sequences (the code draws a fresh minibatch per update) and the test set ``n_test`` more, both from ``data_seed``.
Stored as float32 N x L x 2 (mean 0, std 1: the network sees the raw values); targets float32 N x 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optrepro.data.splits import ArraySplits
from reproductions.rnn_clipping.sequences import load_sequences

CHANNELS = 2  # marker, number
OUTPUTS = 1  # one linear output: the regression target


def marker_ranges(length: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """[start, stop) of the first and the second marker's position (the code's p0 and p1 ranges)."""
    tenth = int(length * 0.1)
    return (0, tenth), (tenth, tenth + int(length * 0.4))


def addition_sequences(n: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(float32 n x length x 2 sequences, float32 n x 1 targets) of the task above."""
    (first_lo, first_hi), (second_lo, second_hi) = marker_ranges(length)
    rows = np.arange(n)
    first_at = rng.integers(first_lo, first_hi, size=n)
    second_at = rng.integers(second_lo, second_hi, size=n)
    x = np.zeros((n, length, CHANNELS), dtype=np.float32)
    x[:, :, 1] = rng.uniform(size=(n, length))
    x[rows, first_at, 0] = 1.0
    x[rows, second_at, 0] = 1.0
    targets = (x[rows, first_at, 1] + x[rows, second_at, 1]) / 2.0
    return x, targets.reshape(-1, 1).astype(np.float32)


def load_addition(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """Built in memory; knobs in configs/dataset/addition.yaml."""
    return load_sequences(dataset_cfg, addition_sequences, outputs=OUTPUTS, channels=CHANNELS, name="addition")
