"""``dataset=markov_lm``: next-token prediction on sequences drawn from a random Markov chain over a vocabulary.

Language-like statistics with no download: each context (the last ``order`` tokens) has its own next-token
distribution, Zipf-shaped (probability of rank r proportional to r^-zipf) over its own random order of the
vocabulary, so a few successors dominate and the rest are rare. The chain runs ``context + 1`` tokens from a
uniform start; the first ``context`` are the input (token ids as floats, mean 0 and std 1: left as they are) and
the last is the label. Every draw, the chain included, comes from ``data_seed``: the same for every run seed.
"""

from __future__ import annotations

import numpy as np
import torch

from optrepro.config_schema import NonNegFloat, NonNegInt, OpenSection, PosInt, check_node
from optrepro.data.splits import ArraySplits
from optrepro.errors import InvalidConfigError


def transition_table(vocab: int, order: int, zipf: float, rng: np.random.Generator) -> np.ndarray:
    """vocab^order x vocab next-token probabilities, each row Zipf(zipf) over a random permutation of the tokens."""
    weights = np.arange(1, vocab + 1, dtype=np.float64) ** -zipf
    weights /= weights.sum()
    rows = vocab**order
    return np.stack([weights[np.argsort(rng.permutation(vocab))] for _ in range(rows)])


def draw_sequences(table: np.ndarray, n: int, length: int, order: int, rng: np.random.Generator) -> np.ndarray:
    """n x length token ids: `order` uniform start tokens, then the chain of `table`."""
    vocab = table.shape[1]
    tokens = np.zeros((n, length), dtype=np.int64)
    tokens[:, :order] = rng.integers(0, vocab, size=(n, order))
    cumulative = table.cumsum(axis=1)
    for t in range(order, length):
        context = np.zeros(n, dtype=np.int64)
        for k in range(order):
            context = context * vocab + tokens[:, t - order + k]
        u = rng.random(n)[:, None]
        tokens[:, t] = np.minimum((u > cumulative[context]).sum(axis=1), vocab - 1)
    return tokens


class MarkovLMKnobs(OpenSection):
    """The dataset keys this loader reads beside the shared ones (values: configs/dataset/markov_lm.yaml, read as
    given)."""

    vocab: PosInt  # tokens = classes
    context: PosInt  # input tokens
    order: PosInt  # the next token depends on the last `order` tokens
    zipf: NonNegFloat
    n_train: PosInt
    n_test: PosInt
    data_seed: NonNegInt


def check_knobs(dataset_cfg) -> MarkovLMKnobs:
    """The loader's keys typed by MarkovLMKnobs (one line: key, problem, fix), then the rules relating two of them;
    run by the config check before any work (load_markov_lm.validate), and by the loader for its typed knobs."""
    knobs = check_node(dataset_cfg, "dataset", MarkovLMKnobs)
    if knobs.order > knobs.context:
        raise InvalidConfigError(
            "dataset.order",
            f"{knobs.order} exceeds the context {knobs.context}",
            "use an order <= dataset.context",
        )
    if knobs.vocab**knobs.order > 2**20:
        raise InvalidConfigError(
            "dataset.order",
            f"vocab^order = {knobs.vocab**knobs.order} contexts",
            "keep vocab^order <= 2^20 (a smaller vocab or order)",
        )
    return knobs


def load_markov_lm(dataset_cfg, data_dir) -> ArraySplits:
    """`dataset.loader` of markov_lm (configs/dataset/markov_lm.yaml)."""
    knobs = check_knobs(dataset_cfg)
    rng = np.random.default_rng(knobs.data_seed)
    table = transition_table(knobs.vocab, knobs.order, float(knobs.zipf), rng)
    length = knobs.context + 1
    train = draw_sequences(table, knobs.n_train, length, knobs.order, rng)
    test = draw_sequences(table, knobs.n_test, length, knobs.order, rng)
    split = [(torch.from_numpy(s[:, :-1]).float(), torch.from_numpy(s[:, -1])) for s in (train, test)]
    context = knobs.context
    return ArraySplits(
        split[0][0],
        split[0][1],
        split[1][0],
        split[1][1],
        knobs.vocab,
        str(dataset_cfg.get("name", "markov_lm")),
        (0.0,) * context,
        (1.0,) * context,
    )


load_markov_lm.validate = check_knobs
