"""NOTEARS for linear SEMs (Zheng et al. 2018): min_W 1/(2n)||X - XW||^2 + lambda1 ||W||_1  s.t.  h(W) = 0,
h(W) = tr(exp(W∘W)) - d, solved by an augmented Lagrangian whose subproblems L-BFGS-B solves on W = W+ - W-
(W+, W- >= 0, so the l1 term is smooth). Defaults follow the official `notears_linear`: rho starts at 1 and
grows x10 until h drops below a quarter of its previous value, h_tol 1e-8, rho_max 1e16, 100 dual steps,
edges with |w| < 0.3 dropped at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize


def acyclicity(weights: np.ndarray) -> tuple[float, np.ndarray]:
    """h(W) = tr(exp(W∘W)) - d and its gradient exp(W∘W)^T ∘ 2W; h = 0 exactly when W is a DAG."""
    expm = scipy.linalg.expm(weights * weights)
    return float(np.trace(expm)) - weights.shape[0], expm.T * weights * 2.0


@dataclass
class NotearsResult:
    weights: np.ndarray  # thresholded output
    raw_weights: np.ndarray  # before the threshold
    h: float  # h of the raw solution
    rho: float
    dual_steps: int
    lbfgs_solves: int


def notears_linear(
    x: np.ndarray,
    lambda1: float,
    *,
    max_iter: int = 100,
    h_tol: float = 1e-8,
    rho_max: float = 1e16,
    w_threshold: float = 0.3,
) -> NotearsResult:
    n, d = x.shape
    x = x - x.mean(axis=0, keepdims=True)
    gram = x.T @ x / n

    def unpack(w: np.ndarray) -> np.ndarray:
        return (w[: d * d] - w[d * d :]).reshape(d, d)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights = unpack(w)
        residual_cov = gram - gram @ weights  # X^T (X - XW) / n
        loss = 0.5 * float(np.trace((np.eye(d) - weights).T @ (gram - gram @ weights)))
        grad_loss = -residual_cov
        h, grad_h = acyclicity(weights)
        value = loss + 0.5 * rho * h * h + alpha * h + lambda1 * w.sum()
        smooth = grad_loss + (rho * h + alpha) * grad_h
        return value, np.concatenate([(smooth + lambda1).ravel(), (-smooth + lambda1).ravel()])

    bounds = [(0, 0) if i == j else (0, None) for _ in range(2) for i in range(d) for j in range(d)]
    w_est, rho, alpha, h = np.zeros(2 * d * d), 1.0, 0.0, np.inf
    steps = solves = 0
    for _ in range(max_iter):
        w_new, h_new = w_est, h
        while rho < rho_max:
            solution = scipy.optimize.minimize(objective, w_est, method="L-BFGS-B", jac=True, bounds=bounds)
            solves += 1
            w_new = solution.x
            h_new, _ = acyclicity(unpack(w_new))
            if h_new > 0.25 * h:
                rho *= 10.0
            else:
                break
        w_est, h = w_new, h_new
        alpha += rho * h
        steps += 1
        if h <= h_tol or rho >= rho_max:
            break
    raw = unpack(w_est)
    thresholded = raw.copy()
    thresholded[np.abs(thresholded) < w_threshold] = 0.0
    return NotearsResult(
        weights=thresholded, raw_weights=raw, h=float(h), rho=rho, dual_steps=steps, lbfgs_solves=solves
    )
