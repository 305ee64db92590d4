"""Graph recovery metrics (the official NOTEARS convention) and the l1-penalized least-squares score."""

from __future__ import annotations

import numpy as np


def count_accuracy(true_support: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """SHD, TPR, FDR, FPR and the number of predicted edges of a directed estimate.

    A predicted edge whose reverse is a true edge is a *reversal*: it is a false discovery (FDR), not a true
    positive (TPR), and it counts once in SHD (SHD = extra skeleton edges + missing skeleton edges + reversals),
    as in the official NOTEARS `count_accuracy`.
    """
    truth = np.asarray(true_support) != 0
    pred = np.asarray(estimate) != 0
    np.fill_diagonal(pred, False)
    d = truth.shape[0]
    true_pos = pred & truth
    reverse = pred & ~truth & truth.T
    false_pos = pred & ~truth & ~truth.T
    nnz = int(pred.sum())
    cond = int(truth.sum())
    skeleton_true = np.triu(truth | truth.T, k=1)
    skeleton_pred = np.triu(pred | pred.T, k=1)
    extra = int((skeleton_pred & ~skeleton_true).sum())
    missing = int((skeleton_true & ~skeleton_pred).sum())
    cond_neg = 0.5 * d * (d - 1) - cond
    wrong = int(reverse.sum() + false_pos.sum())
    return {
        "shd": float(extra + missing + int(reverse.sum())),
        "tpr": float(true_pos.sum()) / max(cond, 1),
        "fdr": float(wrong) / max(nnz, 1),
        "fpr": float(wrong) / max(cond_neg, 1),
        "nnz": float(nnz),
    }


def squared_loss(x: np.ndarray, weights: np.ndarray) -> float:
    """1/(2n) ||X - X W||_F^2 (X centered by the caller)."""
    residual = x - x @ weights
    return 0.5 / x.shape[0] * float((residual**2).sum())


def score(x: np.ndarray, weights: np.ndarray, lambda1: float) -> float:
    """The NOTEARS objective without the constraint: 1/(2n) ||X - XW||^2 + lambda1 ||W||_1."""
    return squared_loss(x, weights) + lambda1 * float(np.abs(weights).sum())
