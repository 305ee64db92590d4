"""Aggregators of Jacobian descent as functions of the Gramian G = J J^T (Quinton & Rey, arXiv:2406.16232).

Every aggregator here is *weighted* (paper, Definition 3): A(J) = J^T w with a weight vector w that depends on J only
through G (paper, Section 6). So each function below maps G (m x m, float64) to w (m,), and the step applies
J^T w. Definitions (paper, Section 2.3 and Appendix C):

* ``mean``     w = 1/m                                                     (eq. 25; IWRM with it is ERM with SGD)
* ``upgrad``   w = (1/m) sum_i w_i,  w_i = argmin_{v >= e_i} v^T G v       (eqs. 4-6, Proposition 1)
* ``dualproj`` w = (1/m) argmin_{v >= 1} v^T G v                    (eq. 29: the mean projected onto the dual cone)
* ``mgda``     w = argmin_{v >= 0, 1^T v = 1} v^T G v               (eqs. 26-27; Frank-Wolfe, Sener & Koltun Alg. 2)
* ``pcgrad``   sum_i of g_i projected in turn, in a random order, onto the half-spaces of the other rows it
               conflicts with (eqs. 30-33; the paper's definition sums, so PCGrad = m * UPGrad when m = 2)

The box-constrained dual problems min_{v >= u} v^T G v are solved exactly (active set, to round-off) as
non-negative least squares: with G = A^T A (A from the eigendecomposition of G) and v = u + z, z >= 0, the problem is
min_z ||A z + A u||^2, which scipy's Lawson-Hanson NNLS solves.

Regularization (``reg_eps``, default 1e-4), as in the authors' library TorchJD (``torchjd._linalg``: the
Gramian divided by its trace, then ``reg_eps * I`` added; a trace below ``norm_eps`` = 1e-4 counts as a zero
Gramian) [repo]. Without it, a (numerically) singular Gramian, which IWRM produces often (near-dependent
per-example gradients), leaves the dual problem with unbounded minimizers: NNLS then returns weights of 1e6-1e9
whose float32 update J^T w is round-off dominated, conflicts with the rows and diverges (README: pilot).
``reg_eps=0`` gives the exact definition (the hand-computed tests use it). With ``reg_eps > 0`` non-conflict holds
for G + reg_eps * trace(G) * I, i.e. <g_i, d> >= -reg_eps * trace(G) * w_i: a small conflict is possible when the
rows are tiny compared with the Frobenius norm of J; ``train/jd_worst_conflict`` measures it.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import nnls

AGGREGATORS = ("upgrad", "mean", "mgda", "dualproj", "pcgrad")


def check_aggregator(name: str) -> str:
    if name not in AGGREGATORS:
        raise ValueError(f"optimizer.aggregator={name!r} is not one of the choices; allowed: {', '.join(AGGREGATORS)}")
    return name


def _gram_factor(gramian: np.ndarray) -> np.ndarray:
    """A with A^T A = G (G symmetric PSD up to round-off; negative eigenvalues from round-off are set to 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (gramian + gramian.T))
    return np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T


NORM_EPS = 1e-4  # TorchJD's norm_eps: a Gramian with a smaller trace is treated as zero [repo]
REG_EPS = 1e-4  # TorchJD's reg_eps [repo]


def dual_cone_weights(gramian: np.ndarray, lower: np.ndarray, reg_eps: float = REG_EPS) -> np.ndarray:
    """argmin_{v >= lower} v^T (G / tr G + reg_eps I) v for each column of ``lower`` (m x k); returns m x k.

    By Proposition 1 of the paper (reg_eps = 0), J^T v is the projection of J^T lower[:, j] onto the dual cone of
    J's rows. The trace normalization does not change the argmin (module docstring for reg_eps).
    """
    trace = float(np.trace(gramian))
    if not np.isfinite(trace) or trace <= (NORM_EPS if reg_eps > 0 else 0.0):  # zero Gramian: keep the lower bound
        return lower.copy()
    factor = _gram_factor(gramian / trace + reg_eps * np.eye(len(gramian)))
    out = np.empty_like(lower)
    for j in range(lower.shape[1]):
        z, _ = nnls(factor, -factor @ lower[:, j], maxiter=50 * len(gramian))
        out[:, j] = lower[:, j] + z
    return out


def upgrad_weights(gramian: np.ndarray, reg_eps: float = REG_EPS) -> np.ndarray:
    m = len(gramian)
    return dual_cone_weights(gramian, np.eye(m), reg_eps).mean(axis=1)


def dualproj_weights(gramian: np.ndarray, reg_eps: float = REG_EPS) -> np.ndarray:
    m = len(gramian)
    return dual_cone_weights(gramian, np.ones((m, 1)), reg_eps)[:, 0] / m


def mgda_weights(gramian: np.ndarray, *, tol: float = 1e-6, max_iters: int = 250) -> np.ndarray:
    """Min-norm point of the convex hull of the rows: Frank-Wolfe with exact line search (Sener & Koltun 2018,
    Alg. 2)."""
    m = len(gramian)
    w = np.full(m, 1.0 / m)
    for _ in range(max_iters):
        t = int(np.argmin(gramian @ w))
        a = float(w @ gramian[:, t])  # <w, e_t>_G
        b = float(w @ gramian @ w)  # ||w||_G^2
        c = float(gramian[t, t])  # ||e_t||_G^2
        if c <= a:
            gamma = 1.0
        elif b <= a:
            gamma = 0.0
        else:
            gamma = (b - a) / (b + c - 2.0 * a)
        w = (1.0 - gamma) * w
        w[t] += gamma
        if gamma < tol:
            break
    return w


def pcgrad_weights(gramian: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Weights of PCGrad's sum (eqs. 30-33): each projected g_i is a combination J^T c_i tracked through G."""
    m = len(gramian)
    total = np.zeros(m)
    for i in range(m):
        c = np.zeros(m)
        c[i] = 1.0
        for j in rng.permutation([k for k in range(m) if k != i]):
            dot = float(c @ gramian[:, j])  # <g_i^PC, g_j>
            norm2 = float(gramian[j, j])
            if dot < 0.0 and norm2 > 0.0:
                c[j] -= dot / norm2
        total += c
    return total


def aggregator_weights(
    name: str, gramian: torch.Tensor, rng: np.random.Generator | None = None, reg_eps: float = REG_EPS
) -> torch.Tensor:
    """The weight vector w (float64, on the Gramian's device) of aggregator ``name`` for Gramian ``gramian``
    (``reg_eps``: UPGrad's and DualProj's regularization, module docstring)."""
    check_aggregator(name)
    m = gramian.shape[0]
    if name == "mean":
        return torch.full((m,), 1.0 / m, dtype=torch.float64, device=gramian.device)
    g = gramian.detach().to("cpu", torch.float64).numpy()
    if name == "upgrad":
        w = upgrad_weights(g, reg_eps)
    elif name == "dualproj":
        w = dualproj_weights(g, reg_eps)
    elif name == "mgda":
        w = mgda_weights(g)
    else:
        w = pcgrad_weights(g, rng if rng is not None else np.random.default_rng(0))
    return torch.from_numpy(w).to(gramian.device)


def aggregate(
    name: str, jacobian: torch.Tensor, rng: np.random.Generator | None = None, reg_eps: float = REG_EPS
) -> torch.Tensor:
    """A(J) = J^T w for a Jacobian J (m x n); the Gramian is formed in float64."""
    j64 = jacobian.to(torch.float64)
    weights = aggregator_weights(name, j64 @ j64.T, rng, reg_eps)
    return weights.to(jacobian.dtype) @ jacobian
