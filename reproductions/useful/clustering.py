"""USEFUL's split of each class into fast- and slow-learnable examples (Nguyen et al., NeurIPS 2024, Sec. 4).

Within every class separately, k-means on the network's early outputs; the cluster with the higher mean loss holds
the examples whose features the network has not learned yet (the slow-learnable ones), and only those are upsampled.
Clustering per class matters: across classes, k-means would split by class, not by how well an example is learned.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def slow_learnable(
    outputs: np.ndarray, labels: np.ndarray, losses: np.ndarray, *, clusters: int = 2, seed: int = 0
) -> np.ndarray:
    """Sorted indices of the examples in their class's highest-mean-loss k-means cluster of `outputs` (N x K)."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < clusters:  # too few examples to split: nothing in this class is called slow
            continue
        assignment = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(outputs[members])
        mean_loss = [
            losses[members[assignment == c]].mean() if (assignment == c).any() else -np.inf for c in range(clusters)
        ]
        chosen.append(members[assignment == int(np.argmax(mean_loss))])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
