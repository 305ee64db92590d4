"""Saddle-free Newton in a Krylov subspace (Dauphin et al., NeurIPS 2014, Algorithm 1; Pascanu et al., arXiv:1405.4604).

Each step, on the training batch (the whole training set in this paper's presets, so the steps are full-batch):

1. ``k`` Lanczos iterations on the Hessian H of the batch loss, started from the gradient g, with full
   reorthogonalisation; Hessian-vector products by double backward. This gives an orthonormal basis V (k x n) of the
   Krylov subspace span{g, Hg, ..., H^{k-1} g} and the tridiagonal T = V H V^T, whose eigenvalues are the Ritz values.
2. T = U diag(theta) U^T. ``method: sfn`` takes |T| = U diag(|theta|) U^T, ``method: damped_newton`` keeps T.
3. For each damping value lambda in ``damping`` the step is
   delta(lambda) = -V^T U diag(1 / (c(theta) + lambda)) U^T V g,
   with c = |.| (SFN) or the identity (damped Newton). The lambda whose step, scaled by the learning rate, gives the
   lowest batch loss is taken (the paper's "lambda <- argmin f(theta + ...)"; a single value is a fixed damping).
   Since g lies in the subspace, V g = ||g|| e_1.
4. theta <- theta + lr * delta(lambda*), through the base optimizer (plain SGD without momentum or weight decay, so
   its lr and schedule apply): the gradient slot holds -delta.

The run record gets the smallest and largest Ritz value of each step, the number of negative ones and the damping
chosen (``callbacks.krylov_stats``, reproductions/saddle_free_newton/metrics.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from optrepro.config_schema import NonNegFloat, OpenSection, PosInt
from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.factory import build_base_optimizer, refuse_micro_batches, validated_on_stand_in
from optrepro.optim.standard import Chunk, forward_loss, optimizer_params

METHODS = ("sfn", "damped_newton")


def lanczos(hvp: Callable[[Tensor], Tensor], start: Tensor, k: int, *, tol: float = 1e-10) -> tuple[Tensor, Tensor]:
    """``k`` Lanczos steps of the symmetric operator ``hvp`` from ``start``, with full reorthogonalisation.

    Returns (V, T): V has orthonormal rows spanning the Krylov subspace, T = V A V^T is tridiagonal. Stops early
    (fewer rows) when the subspace is invariant (the next residual is below ``tol`` times the largest |T| entry).
    """
    if k < 1:
        raise ValueError(f"krylov_dim must be >= 1, got {k}")
    norm = start.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the Lanczos start vector must be finite and non-zero")
    basis = [start / norm]
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    for j in range(k):
        q = basis[j]
        w = hvp(q)
        alpha = torch.dot(q, w)
        alphas.append(alpha)
        if j == k - 1:
            break
        stacked = torch.stack(basis)
        for _ in range(2):  # classical Gram-Schmidt twice against every earlier vector
            w = w - stacked.T @ (stacked @ w)
        beta = w.norm()
        scale = max(max(abs(float(a)) for a in alphas), max((float(b) for b in betas), default=0.0), 1e-30)
        if not torch.isfinite(beta) or float(beta) <= tol * scale:
            break
        betas.append(beta)
        basis.append(w / beta)
    m = len(alphas)
    V = torch.stack(basis[:m])
    T = torch.diag(torch.stack(alphas).to(torch.float64))
    if m > 1:
        off = torch.stack(betas[: m - 1]).to(torch.float64)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    return V, T


def subspace_directions(
    T: Tensor, grad_coords: Tensor, method: str, dampings: Sequence[float]
) -> tuple[list[Tensor], Tensor]:
    """Subspace coordinates of -(c(T) + lambda I)^{-1} grad_coords per damping, and T's eigenvalues (Ritz values).

    c(T) = |T| (``sfn``: absolute eigenvalues) or T (``damped_newton``). A damping that makes c(T) + lambda I singular
    gives a non-finite direction, which the line search skips.
    """
    check_method(method)
    ritz, U = torch.linalg.eigh(T)
    curvature = ritz.abs() if method == "sfn" else ritz
    projected = U.T @ grad_coords.to(torch.float64)
    directions = []
    for damping in dampings:
        with torch.no_grad():
            directions.append(-(U @ (projected / (curvature + float(damping)))))
    return directions, ritz


def check_method(method: str) -> None:
    if method not in METHODS:
        raise InvalidConfigError("optimizer.method", f"{method!r} is not one of {', '.join(METHODS)}", "choose one")


def check_dampings(dampings: Sequence[float]) -> list[float]:
    values = [float(d) for d in dampings]
    if not values or any(not math.isfinite(d) or d < 0 for d in values):
        raise InvalidConfigError(
            "optimizer.damping", f"{list(dampings)} is not one or more finite values >= 0", "give e.g. [0.01, 0.1]"
        )
    return values


class KrylovNewtonStep(StepStrategy):
    """One (saddle-free or damped) Newton step in a k-dimensional Krylov subspace of the batch Hessian."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        method: str = "sfn",
        krylov_dim: int = 20,
        damping: Sequence[float] | float = (1e-3, 1e-2, 1e-1, 1.0, 10.0),
    ) -> None:
        check_method(method)
        if int(krylov_dim) < 1:
            raise InvalidConfigError("optimizer.krylov_dim", f"must be >= 1, got {krylov_dim}", "give e.g. 20")
        for group in optimizer.param_groups:
            if group.get("momentum", 0) or group.get("weight_decay", 0):
                raise ConfigError(
                    "saddle-free Newton applies its step through plain SGD: "
                    "set optimizer.base.momentum=0 and optimizer.base.weight_decay=0"
                )
        self.optimizer = optimizer
        self.method = method
        self.krylov_dim = int(krylov_dim)
        self.dampings = check_dampings([damping] if isinstance(damping, (int, float)) else list(damping))
        self.last_stats: dict[str, float] = {}
        self.stats: list[dict[str, float]] = []

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        inputs, targets, _ = batch
        params = [p for p in optimizer_params(self.optimizer) if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = forward_loss(backend, Chunk(inputs, targets, 1.0))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat_grad = torch.cat([g.reshape(-1) for g in grads])
        g = flat_grad.detach()

        def hvp(v: Tensor) -> Tensor:
            hv = torch.autograd.grad(flat_grad, params, grad_outputs=v, retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]).detach()

        lr = float(self.optimizer.param_groups[0]["lr"])
        grad_norm = float(g.norm())
        stats = {"grad_norm": grad_norm}
        if grad_norm == 0.0 or not math.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            step = torch.zeros_like(g)
            stats.update(min_ritz=float("nan"), max_ritz=float("nan"), negative_ritz=float("nan"), damping=float("nan"))
        else:
            V, T = lanczos(hvp, g, self.krylov_dim)
            coords = torch.zeros(T.shape[0], dtype=torch.float64, device=T.device)
            coords[0] = grad_norm  # g is V's first row times ||g||
            directions, ritz = subspace_directions(T, coords, self.method, self.dampings)
            step, damping = self._line_search(backend, inputs, targets, params, V, directions, lr)
            stats.update(
                min_ritz=float(ritz.min()),
                max_ritz=float(ritz.max()),
                negative_ritz=float((ritz < 0).sum()),
                damping=damping,
            )
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = -step[offset : offset + n].view_as(p).to(p.dtype)
            offset += n
        backend.apply_update(self.optimizer.step)
        self.last_stats = stats
        self.stats.append(stats)
        metrics = {key: torch.tensor(value) for key, value in stats.items()}
        return StepOutput(loss.detach(), logits.detach(), metrics)

    @torch.no_grad()
    def _line_search(self, backend, inputs, targets, params, V, directions, lr) -> tuple[Tensor, float]:
        """The step (parameter space, before the lr) whose damping gives the lowest batch loss at theta + lr * step."""
        originals = [p.detach().clone() for p in params]
        best: tuple[float, Tensor, float] | None = None
        for damping, coords in zip(self.dampings, directions):
            if not torch.isfinite(coords).all():
                continue
            step = coords.to(V.dtype) @ V
            self._set(params, originals, lr * step)
            trial, _ = forward_loss(backend, Chunk(inputs, targets, 1.0))
            value = float(trial)
            if math.isfinite(value) and (best is None or value < best[0]):
                best = (value, step, damping)
        self._set(params, originals, None)
        if best is None:
            return torch.zeros(V.shape[1], dtype=V.dtype, device=V.device), float("nan")
        return best[1], best[2]

    @staticmethod
    def _set(params, originals, delta: Tensor | None) -> None:
        offset = 0
        for p, original in zip(params, originals):
            n = p.numel()
            p.copy_(original if delta is None else original + delta[offset : offset + n].view_as(p).to(p.dtype))
            offset += n


class SFNKnobs(OpenSection):
    """The optimizer keys this step reads (values: configs/optimizer/sfn.yaml)."""

    method: Literal["sfn", "damped_newton"]
    krylov_dim: PosInt
    damping: Annotated[list[NonNegFloat], Field(min_length=1)]  # searched per step; one value: [0.1]


@validated_on_stand_in(SFNKnobs)
def build_sfn_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """Step builder for ``optimizer.step: reproductions.saddle_free_newton.step:build_sfn_step``.

    Knobs: ``optimizer.method`` (sfn | damped_newton), ``optimizer.krylov_dim`` (k), ``optimizer.damping`` (a value or a
    list searched per step). Micro-batching and gradient clipping are not part of the method and are refused.
    """
    method = cfg.get("method", "sfn")
    check_method(method)
    refuse_micro_batches(accumulate, "saddle-free Newton")
    if grad_clip is not None:
        raise InvalidConfigError("train.grad_clip", "saddle-free Newton has no gradient clipping", "set it to null")
    damping = cfg.get("damping", [1e-3, 1e-2, 1e-1, 1.0, 10.0])
    damping = [damping] if isinstance(damping, (int, float)) else list(damping)
    optimizer = build_base_optimizer(cfg, model)
    step = KrylovNewtonStep(optimizer, method=method, krylov_dim=int(cfg.get("krylov_dim", 20)), damping=damping)
    return optimizer, step
