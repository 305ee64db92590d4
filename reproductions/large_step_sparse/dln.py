"""The diagonal linear network experiment of Andriushchenko et al. (ICML 2023), as in the official diag_nets.py.

Data: X ~ N(0, I) (n x d), beta* >= 0 with r nonzero coordinates and unit norm, noiseless y = X beta*, n_test test
points. Model h(x) = <x, u * v>, loss ||X (u * v) - y||^2 / (2 n). From u0 = init_scale * 1, v0 = 0:
- SGD (batch 1): pick i uniformly, r_i = <x_i, u * v> - y_i, then u <- u - lr r_i x_i * v and v <- v - lr r_i x_i * u
  (both from the old u, v);
- GD: the same with the full gradient (1/n X^T (X beta - y)).
The step is divided by `decay_factor` once, after iteration decay_at * iterations (the notebooks' "large step, then
decay at 10/30/50%"); decay_at null keeps it constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reproductions.large_step_sparse.sparsity import beta_sparsity


@dataclass(frozen=True)
class Problem:
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    beta_star: np.ndarray


def make_problem(rng: np.random.Generator, n: int, d: int, r: int, n_test: int) -> Problem:
    x, x_test = rng.standard_normal((n, d)), rng.standard_normal((n_test, d))
    beta_star = np.zeros(d)
    beta_star[:r] = np.abs(rng.standard_normal(r))
    beta_star /= np.linalg.norm(beta_star)
    return Problem(x, x @ beta_star, x_test, x_test @ beta_star, beta_star)


def half_mse(x: np.ndarray, beta: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x @ beta - y) ** 2) / (2 * len(y)))


def decay_iteration(iterations: int, decay_at: float | None) -> int | None:
    """The iteration after which the step is divided (None: constant step)."""
    return None if decay_at is None else int(decay_at * iterations)


def train(
    problem: Problem,
    rng: np.random.Generator,
    *,
    algorithm: str,
    lr: float,
    iterations: int,
    decay_at: float | None,
    decay_factor: float,
    init_scale: float,
    log_every: int,
) -> list[dict[str, float]]:
    """Run SGD or GD; one history row every `log_every` iterations and at the end (losses, sparsity, step size)."""
    x, y = problem.x, problem.y
    n, d = x.shape
    u, v = np.full(d, float(init_scale)), np.zeros(d)
    decay = decay_iteration(iterations, decay_at)
    samples = rng.integers(n, size=iterations) if algorithm == "sgd" else None
    history: list[dict[str, float]] = []
    for step in range(iterations):
        if samples is not None:
            i = samples[step]
            grad = (x[i] @ (u * v) - y[i]) * x[i]
        else:
            grad = x.T @ (x @ (u * v) - y) / n
        u, v = u - lr * grad * v, v - lr * grad * u
        if step == decay:
            lr = lr / decay_factor
        done = step + 1
        if done % log_every == 0 or done == iterations:
            history.append(row(problem, u, v, epoch=len(history), step=done, lr=lr))
            if not np.isfinite(history[-1]["train/loss"]):
                break
    return history


def row(problem: Problem, u: np.ndarray, v: np.ndarray, *, epoch: int, step: int, lr: float) -> dict[str, float]:
    beta = u * v
    with np.errstate(over="ignore", invalid="ignore"):
        out = {
            "epoch": epoch,
            "step": step,
            "lr": lr,
            "train/loss": half_mse(problem.x, beta, problem.y),
            "test/loss": half_mse(problem.x_test, beta, problem.y_test),
        }
        out.update(beta_sparsity(u, v))
    return out
