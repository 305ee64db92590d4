"""GAM: Gradient norm Aware Minimization (Zhang et al., CVPR 2023, arXiv 2303.03108).

GAM penalises *first-order flatness*, ``R(w) = rho * max_{||d|| <= rho} ||grad L(w + d)||``,
the largest gradient norm in a ball, and minimises ``L(w) + alpha * R(w)``. Two update rules:

``paper`` (Algorithm 1 of the paper; Hessian-vector products by double backward)::

    g     = grad L(w)
    f     = H(w) g / (||g|| + xi)                  # = grad ||grad L(w)||
    w_adv = w + rho * f / (||f|| + xi)             # ascent on the gradient norm
    g_adv = grad L(w_adv)
    h     = rho * H(w_adv) g_adv / (||g_adv|| + xi)  # = grad R(w), evaluated at w_adv
    update the base optimizer with  g + alpha * h

``official_fd`` (the "accelerated GAM" released in xxgege/GAM, ``gam/gam.py``): Hessian-vector
products replaced by gradient differences, with 5 hyperparameters (README, Appendix D)::

    g0 = grad L(w);        g1 = grad L(w + rho' g0/||g0||)       # g1 - g0 ~ rho' H g0/||g0||
    w2 = w + rho (g1 - g0)/||g1 - g0||;  g2 = grad L(w2)        # ascent on the gradient norm
    g3 = grad L(w2 + rho' g2/||g2||)                             # SAM-like gradient at w2
    m  = g0 + |1 - beta| g2;   u = alpha g1 + (1 - alpha) g3
    update with  u - gamma * (m - cos(m, u) ||m|| u/||u||)      # minus gamma x (m orthogonal to u)

Shared details: the passes after the first run under ``no_sync`` and BatchNorm statistics are
those of the first (clean) pass (snapshot/restore, as the official ``momentum = 0`` trick
intends). Like the official code every device computes its own perturbations and only the
final direction is averaged over devices. fp16 loss scaling is not supported (use 32 or
bf16-mixed): the double backward of the paper rule would need its own unscaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.optim import Optimizer

from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.bn import restore_norm_buffers, snapshot_norm_buffers
from optrepro.optim.factory import build_base_optimizer
from optrepro.optim.standard import (
    Chunk,
    batch_rows,
    batch_total,
    finish_step,
    forward_loss,
    optimizer_params,
    split_batch,
    weighted,
)

GAM_VARIANTS = ("paper", "official_fd")
Vector = list[Tensor]


# Vector arithmetic on whole parameter lists through foreach kernels: a few launches per operation, not one per tensor.
def norm(vector: Vector) -> Tensor:
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(vector)))


def dot(a: Vector, b: Vector) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def scaled(vector: Vector, factor: Tensor | float) -> Vector:
    return torch._foreach_mul(vector, factor)


def combined(a: Vector, b: Vector, alpha: Tensor | float = 1.0, beta: Tensor | float = 1.0) -> Vector:
    """``alpha * a + beta * b``."""
    return torch._foreach_add(torch._foreach_mul(a, alpha), torch._foreach_mul(b, beta))


def _zeros_for_unused(grads: tuple[Tensor | None, ...], params: Vector) -> Vector:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


class BatchGradients:
    """Gradient and Hessian-vector products of one batch's mean loss at the current weights.

    Every pass runs under ``no_sync`` (nothing is all-reduced) and returns the result instead
    of touching ``.grad``; micro-batches are weighted so that they sum to the batch mean.
    The first :meth:`gradient` call keeps its loss and logits: the step reports the clean pass.
    """

    def __init__(self, backend: TrainingBackend, chunks: list[Chunk], params: Vector):
        self.backend = backend
        self.chunks = chunks
        self.params = params
        self.clean_loss: Tensor | None = None
        self.clean_logits: Tensor | None = None

    def gradient(self) -> Vector:
        total = [torch.zeros_like(p) for p in self.params]
        losses, logits = [], []
        for chunk in self.chunks:
            with self.backend.no_sync():
                loss, chunk_logits = forward_loss(self.backend, chunk)
                grads = torch.autograd.grad(weighted(loss, chunk.weight), self.params, allow_unused=True)
            torch._foreach_add_(total, _zeros_for_unused(grads, self.params))
            losses.append(weighted(loss.detach(), chunk.weight))
            logits.append(chunk_logits.detach())
        if self.clean_loss is None:
            self.clean_loss, self.clean_logits = batch_total(losses), batch_rows(logits)
        return total

    def hessian_vector_product(self, vector: Vector) -> Vector:
        """``H v`` by double backward: the gradient of ``<grad L, v>`` with ``v`` held constant."""
        total = [torch.zeros_like(p) for p in self.params]
        for chunk in self.chunks:
            with self.backend.no_sync():
                loss, _ = forward_loss(self.backend, chunk)
                grads = torch.autograd.grad(
                    weighted(loss, chunk.weight), self.params, create_graph=True, allow_unused=True
                )
                directional = sum((g * v).sum() for g, v in zip(grads, vector) if g is not None)
                if not directional.requires_grad:  # the loss is linear in the weights: H = 0
                    continue
                products = torch.autograd.grad(directional, self.params, allow_unused=True)
            torch._foreach_add_(total, _zeros_for_unused(products, self.params))
        return total


@torch.no_grad()
def place(params: Vector, clean: Vector, offset: Vector) -> None:
    """Set the weights to ``clean + offset`` (always from the clean copy, so errors do not pile up)."""
    torch._foreach_copy_(params, torch._foreach_add(clean, offset))


@torch.no_grad()
def restore(params: Vector, clean: Vector) -> None:
    """Copy the clean weights back, bit for bit."""
    torch._foreach_copy_(params, clean)


class GAMRule(Protocol):
    """Turns the clean gradient into the update direction, moving the weights as it needs."""

    def direction(self, oracle: BatchGradients, params: Vector, clean: Vector, g0: Vector) -> Vector: ...


@dataclass(frozen=True)
class PaperGAM:
    """Algorithm 1 of the paper with exact Hessian-vector products (4 forward, 6 backward passes).

    rho: radius of the ball in which the gradient norm is maximised (rho_t).
    alpha: weight of the first-order flatness penalty in ``L + alpha * R``.
    xi: small constant that keeps the normalisations finite.
    """

    rho: float
    alpha: float
    xi: float = 1e-12

    def direction(self, oracle: BatchGradients, params: Vector, clean: Vector, g0: Vector) -> Vector:
        f = oracle.hessian_vector_product(scaled(g0, 1.0 / (norm(g0) + self.xi)))
        place(params, clean, scaled(f, self.rho / (norm(f) + self.xi)))
        g_adv = oracle.gradient()
        h = oracle.hessian_vector_product(scaled(g_adv, self.rho / (norm(g_adv) + self.xi)))
        return combined(g0, h, 1.0, self.alpha)


@dataclass(frozen=True)
class OfficialFiniteDifferenceGAM:
    """xxgege/GAM's accelerated GAM (4 forward/backward passes); names as in its README.

    grad_rho: rho'_t, the finite-difference step and the SAM-like step at ``w2``.
    grad_norm_rho: rho_t, the radius of the gradient-norm ascent.
    alpha: grad_beta_1, weight of ``g1`` against ``g3`` in the update.
    beta: grad_beta_0; ``|1 - beta|`` weighs ``g2`` in the decomposed direction ``m``.
    gamma: grad_gamma, how much of ``m``'s component orthogonal to the update is subtracted.
    eps: the official ``perturb_eps``.
    """

    grad_rho: float
    grad_norm_rho: float
    alpha: float
    beta: float
    gamma: float
    eps: float = 1e-12

    def direction(self, oracle: BatchGradients, params: Vector, clean: Vector, g0: Vector) -> Vector:
        place(params, clean, scaled(g0, self.grad_rho / (norm(g0) + self.eps)))
        g1 = oracle.gradient()
        difference = combined(g1, g0, 1.0, -1.0)
        ascent = scaled(difference, self.grad_norm_rho / (norm(difference) + self.eps))
        place(params, clean, ascent)
        g2 = oracle.gradient()
        place(params, clean, combined(ascent, g2, 1.0, self.grad_rho / (norm(g2) + self.eps)))
        g3 = oracle.gradient()
        m = combined(g0, g2, 1.0, abs(1.0 - self.beta))
        u = combined(g1, g3, self.alpha, 1.0 - self.alpha)
        u_norm, m_norm = norm(u), norm(m)
        cosine = dot(m, u) / (u_norm * m_norm + self.eps)
        orthogonal = combined(m, u, 1.0, -cosine * m_norm / (u_norm + self.eps))
        return combined(u, orthogonal, 1.0, -self.gamma)


class GAMStep(StepStrategy):
    """Clean gradient, the rule's extra passes, then one synced, clipped base-optimizer update."""

    def __init__(
        self, optimizer: Optimizer, rule: GAMRule, *, accumulate: int = 1, grad_clip: float | None = None
    ) -> None:
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        self.optimizer = optimizer
        self.rule = rule
        self.accumulate = accumulate
        self.grad_clip = grad_clip

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        if backend.grad_scaler is not None:
            raise ConfigError("GAM does not support fp16 loss scaling; use hardware.precision 32 or bf16-mixed")
        params = [p for p in optimizer_params(self.optimizer) if p.requires_grad]
        oracle = BatchGradients(backend, split_batch(batch, self.accumulate), params)
        g0 = oracle.gradient()
        norm_buffers = snapshot_norm_buffers(backend.model)
        clean = [p.detach().clone() for p in params]
        try:
            direction = self.rule.direction(oracle, params, clean, g0)
        finally:
            restore(params, clean)
            restore_norm_buffers(backend.model, norm_buffers)
        self.optimizer.zero_grad(set_to_none=True)
        for param, value in zip(params, direction):
            param.grad = value.detach()
        backend.all_reduce_grads(params)
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        return StepOutput(oracle.clean_loss, oracle.clean_logits, metrics)


def build_gam_step(
    cfg: DictConfig,
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int = 1,
    grad_clip: float | None = None,
) -> tuple[Optimizer, GAMStep]:
    """Base optimizer plus the GAM step; ``cfg.variant`` picks the rule and its hyperparameter block."""
    optimizer = build_base_optimizer(cfg, model)
    if cfg.variant == "paper":
        rule: GAMRule = PaperGAM(rho=float(cfg.paper.rho), alpha=float(cfg.paper.alpha))
    elif cfg.variant == "official_fd":
        hp = cfg.official_fd
        rule = OfficialFiniteDifferenceGAM(
            grad_rho=float(hp.grad_rho),
            grad_norm_rho=float(hp.grad_norm_rho),
            alpha=float(hp.alpha),
            beta=float(hp.beta),
            gamma=float(hp.gamma),
        )
    else:
        raise UnknownChoiceError("optimizer.variant", cfg.variant, GAM_VARIANTS)
    return optimizer, GAMStep(optimizer, rule, accumulate=accumulate, grad_clip=grad_clip)
