"""Linear SEM data: a random DAG (Erdős–Rényi or scale-free), edge weights in ±[0.5, 2], additive noise.

Everything is drawn from one numpy Generator seeded by (seed, setting): the solver never touches it, so
every solver run with the same seed and setting sees the same graph and the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optrepro.errors import UnknownChoiceError
from reproductions.notears_topo import GRAPH_TYPES, NOISE_TYPES

DATA_STREAM = 0  # rng stream of the data; solvers use other streams of the same seed
WEIGHT_RANGE = (0.5, 2.0)


def is_dag(adjacency: np.ndarray) -> bool:
    """Kahn's algorithm on the nonzero pattern (adjacency[i, j] != 0 means an edge i -> j)."""
    return topological_order(adjacency) is not None


def topological_order(adjacency: np.ndarray) -> list[int] | None:
    """A topological order of the graph (smallest ready index first), or None when it has a cycle."""
    support = np.asarray(adjacency) != 0
    indegree = support.sum(axis=0).astype(int)
    ready = sorted(int(i) for i in np.flatnonzero(indegree == 0))
    order: list[int] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in np.flatnonzero(support[node]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(int(child))
        ready.sort()
    return order if len(order) == support.shape[0] else None


def _permute(rng: np.random.Generator, adjacency: np.ndarray) -> np.ndarray:
    perm = rng.permutation(adjacency.shape[0])
    return adjacency[np.ix_(perm, perm)]


def erdos_renyi_dag(rng: np.random.Generator, d: int, edges: int) -> np.ndarray:
    """G(d, m): `edges` node pairs drawn uniformly without replacement, oriented along a random order."""
    pairs = np.array([(i, j) for i in range(d) for j in range(i + 1, d)], dtype=int).reshape(-1, 2)
    edges = min(int(edges), len(pairs))
    chosen = pairs[rng.choice(len(pairs), size=edges, replace=False)]
    lower = np.zeros((d, d))
    lower[chosen[:, 0], chosen[:, 1]] = 1.0  # i < j: an edge i -> j is acyclic in the order 0..d-1
    return _permute(rng, lower)


def scale_free_dag(rng: np.random.Generator, d: int, per_node: int) -> np.ndarray:
    """Barabási–Albert growth: each new node sends edges to `per_node` earlier nodes chosen by degree + 1."""
    adjacency = np.zeros((d, d))
    degree = np.zeros(d)
    for new in range(1, d):
        count = min(per_node, new)
        weights = degree[:new] + 1.0
        targets = rng.choice(new, size=count, replace=False, p=weights / weights.sum())
        adjacency[new, targets] = 1.0  # new -> old, acyclic in the order d-1..0
        degree[targets] += 1
        degree[new] += count
    return _permute(rng, adjacency)


def simulate_dag(rng: np.random.Generator, d: int, k: float, graph_type: str) -> np.ndarray:
    """Binary adjacency of a DAG with about k*d edges (ER: exactly round(k*d); SF: about k per node)."""
    if graph_type == "ER":
        return erdos_renyi_dag(rng, d, int(round(k * d)))
    if graph_type == "SF":
        return scale_free_dag(rng, d, max(1, int(round(k))))
    raise UnknownChoiceError("structure.graph_type", graph_type, GRAPH_TYPES)


def simulate_weights(
    rng: np.random.Generator, support: np.ndarray, low: float = WEIGHT_RANGE[0], high: float = WEIGHT_RANGE[1]
) -> np.ndarray:
    magnitude = rng.uniform(low, high, size=support.shape)
    sign = np.where(rng.random(support.shape) < 0.5, -1.0, 1.0)
    return support * magnitude * sign


def simulate_linear_sem(rng: np.random.Generator, weights: np.ndarray, n: int, noise: str) -> np.ndarray:
    """X[:, j] = X[:, parents(j)] @ W[parents(j), j] + z_j, unit noise scale, in topological order."""
    d = weights.shape[0]
    order = topological_order(weights)
    if order is None:
        raise ValueError("simulate_linear_sem needs a DAG")
    if noise == "gauss":
        z = rng.normal(size=(n, d))
    elif noise == "exp":
        z = rng.exponential(size=(n, d))
    elif noise == "gumbel":
        z = rng.gumbel(size=(n, d))
    else:
        raise UnknownChoiceError("structure.noise", noise, NOISE_TYPES)
    x = np.zeros((n, d))
    for j in order:
        x[:, j] = x @ weights[:, j] + z[:, j]
    return x


@dataclass(frozen=True)
class SemData:
    x: np.ndarray  # n x d samples (not centered)
    weights: np.ndarray  # d x d true weighted adjacency
    support: np.ndarray  # d x d true binary adjacency


def make_data(seed: int, *, d: int, n: int, k: float, graph_type: str, noise: str) -> SemData:
    """The data of one (seed, setting): depends on nothing else."""
    rng = np.random.default_rng([int(seed), DATA_STREAM])
    support = simulate_dag(rng, d, k, graph_type)
    weights = simulate_weights(rng, support)
    return SemData(x=simulate_linear_sem(rng, weights, n, noise), weights=weights, support=support)
