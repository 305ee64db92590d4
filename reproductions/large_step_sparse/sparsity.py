"""Sparsity of a diagonal linear network's predictor beta = u * v (Andriushchenko et al., ICML 2023).

The official notebooks count the coordinates with |u_i v_i| > 1e-50 (diag_nets.ipynb, `l0_threshold_power = 50`):
at that threshold a short large-step phase still reads as dense although most coordinates are tiny, so a second
count at a threshold on the scale of the problem (1e-4 here: beta* has unit norm and 20 nonzeros) and the l1 norm
are reported too. Fewer nonzeros = sparser features.
"""

from __future__ import annotations

import numpy as np

PAPER_THRESHOLD = 1e-50  # diag_nets.ipynb
SCALE_THRESHOLD = 1e-4  # ours


def beta_sparsity(u: np.ndarray, v: np.ndarray) -> dict[str, float]:
    """Nonzero counts of beta = u * v at the paper's and our threshold, their fractions of d, and ||beta||_1."""
    beta = np.abs(np.asarray(u) * np.asarray(v))
    d = beta.size
    if not np.isfinite(beta).all():  # a diverged run: its predictor is not sparse, it is undefined
        return dict.fromkeys(
            (
                "sparsity/nnz_1e-50",
                "sparsity/nnz_1e-4",
                "sparsity/frac_nnz_1e-50",
                "sparsity/frac_nnz_1e-4",
                "sparsity/l1",
            ),
            float("nan"),
        )
    tiny, scale = float((beta > PAPER_THRESHOLD).sum()), float((beta > SCALE_THRESHOLD).sum())
    return {
        "sparsity/nnz_1e-50": tiny,
        "sparsity/nnz_1e-4": scale,
        "sparsity/frac_nnz_1e-50": tiny / d,
        "sparsity/frac_nnz_1e-4": scale / d,
        "sparsity/l1": float(beta.sum()),
    }
