"""GAM step: both update rules against hand computations on a quadratic, HVP vs finite differences, BN state."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from optrepro.optim.backend import LocalBackend
from optrepro.optim.gam import (
    BatchGradients,
    GAMStep,
    OfficialFiniteDifferenceGAM,
    PaperGAM,
    build_gam_step,
    place,
)
from optrepro.optim.standard import split_batch

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "optimizer"
LR = 0.1


class Quadratic(nn.Module):
    """``f(w) = 0.5 w^T A w`` for every sample, so the batch loss is f and its Hessian is A."""

    def __init__(self, hessian: torch.Tensor, w0: torch.Tensor):
        super().__init__()
        self.register_buffer("hessian", hessian)
        self.w = nn.Parameter(w0.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (0.5 * self.w @ self.hessian @ self.w).expand(len(x))


def quadratic_problem() -> tuple[Quadratic, LocalBackend, tuple]:
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    hessian = root @ root.T + 0.5 * torch.eye(4, dtype=torch.float64)
    model = Quadratic(hessian, torch.randn(4, generator=generator, dtype=torch.float64))
    backend = LocalBackend(model, loss_fn=lambda outputs, targets: outputs.mean())
    batch = (torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, dtype=torch.long), torch.arange(2))
    return model, backend, batch


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def test_paper_rule_on_a_quadratic_equals_the_hand_computation():
    rho, alpha = 0.3, 0.7
    model, backend, batch = quadratic_problem()
    A, w = model.hessian, model.w.detach().clone()
    g = A @ w
    w_adv = w + rho * unit(A @ unit(g))
    h = rho * A @ unit(A @ w_adv)
    expected = w - LR * (g + alpha * h)

    step = GAMStep(torch.optim.SGD(model.parameters(), lr=LR), PaperGAM(rho=rho, alpha=alpha))
    out = step.training_step(backend, batch, epoch=0)

    torch.testing.assert_close(model.w.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.loss, 0.5 * w @ A @ w, rtol=1e-14, atol=0)


def test_official_rule_on_a_quadratic_equals_the_hand_computation():
    grad_rho, grad_norm_rho, alpha, beta, gamma = 0.05, 0.2, 0.6, 0.2, 0.3  # |1 - beta| != beta
    model, backend, batch = quadratic_problem()
    A, w = model.hessian, model.w.detach().clone()
    g0 = A @ w
    g1 = A @ (w + grad_rho * unit(g0))
    w2 = w + grad_norm_rho * unit(g1 - g0)
    g2 = A @ w2
    g3 = A @ (w2 + grad_rho * unit(g2))
    m = g0 + abs(1 - beta) * g2
    u = alpha * g1 + (1 - alpha) * g3
    m_orthogonal_to_u = m - (m @ u) / (u @ u) * u
    expected = w - LR * (u - gamma * m_orthogonal_to_u)

    rule = OfficialFiniteDifferenceGAM(
        grad_rho=grad_rho, grad_norm_rho=grad_norm_rho, alpha=alpha, beta=beta, gamma=gamma
    )
    GAMStep(torch.optim.SGD(model.parameters(), lr=LR), rule).training_step(backend, batch, epoch=0)

    torch.testing.assert_close(model.w.detach(), expected, rtol=1e-12, atol=1e-12)


def small_network() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 4)).double()


def classification_batch(size: int = 8) -> tuple:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(size, 3, generator=generator, dtype=torch.float64)
    return x, torch.randint(0, 4, (size,), generator=generator), torch.arange(size)


def test_hessian_vector_product_agrees_with_finite_differences_to_first_order():
    """(grad L(w + r v) - grad L(w)) / r = H v + O(r): the official rule's approximation of the paper's HVP."""
    model = small_network()
    params = list(model.parameters())
    oracle = BatchGradients(LocalBackend(model), split_batch(classification_batch(), 1), params)
    clean = [p.detach().clone() for p in params]
    g = oracle.gradient()
    g_norm = torch.sqrt(sum((t * t).sum() for t in g))
    v = [t / g_norm for t in g]
    hv = torch.cat([t.flatten() for t in oracle.hessian_vector_product(v)])

    errors = []
    for r in (1e-2, 1e-3):
        place(params, clean, [r * t for t in v])
        fd = torch.cat([(a - b).flatten() / r for a, b in zip(oracle.gradient(), g)])
        errors.append((fd - hv).norm())
    assert errors[0] < 0.05 * hv.norm()
    assert 5 < errors[0] / errors[1] < 20  # the error shrinks linearly with r


@pytest.mark.parametrize(
    "rule",
    [
        PaperGAM(rho=0.1, alpha=0.5),
        OfficialFiniteDifferenceGAM(grad_rho=0.02, grad_norm_rho=0.2, alpha=0.6, beta=0.5, gamma=0.03),
    ],
    ids=["paper", "official_fd"],
)
def test_batchnorm_statistics_are_those_of_the_clean_pass_only(rule):
    model, reference = small_network(), small_network()
    x, y, idx = classification_batch()
    reference(x)  # one training-mode forward at the clean weights

    GAMStep(torch.optim.SGD(model.parameters(), lr=LR), rule).training_step(LocalBackend(model), (x, y, idx), epoch=0)

    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(model[1], name), getattr(reference[1], name)), name


@pytest.mark.parametrize("rule", [PaperGAM(rho=0.1, alpha=0.5), OfficialFiniteDifferenceGAM(0.02, 0.2, 0.6, 0.5, 0.03)])
def test_weights_return_exactly_to_the_clean_point(rule):
    model = small_network()
    before = copy.deepcopy(model.state_dict())
    step = GAMStep(torch.optim.SGD(model.parameters(), lr=0.0), rule)
    step.training_step(LocalBackend(model), classification_batch(), epoch=0)
    for name, value in model.named_parameters():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("rule", [PaperGAM(rho=0.1, alpha=0.5), OfficialFiniteDifferenceGAM(0.02, 0.2, 0.6, 0.5, 0.03)])
def test_micro_batches_give_the_same_step(rule):
    models = [nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).double() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    for model, accumulate in zip(models, (1, 2)):
        step = GAMStep(torch.optim.SGD(model.parameters(), lr=LR), rule, accumulate=accumulate)
        step.training_step(LocalBackend(model), classification_batch(), epoch=0)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant,rule_type", [("paper", PaperGAM), ("official_fd", OfficialFiniteDifferenceGAM)])
def test_config_builds_each_variant(variant, rule_type):
    cfg = OmegaConf.load(CONFIGS / "gam.yaml")
    assert cfg.step == "gam" and cfg.variant == "paper"
    cfg.variant = variant
    optimizer, step = build_gam_step(cfg, small_network(), num_train_samples=8, num_classes=4)
    assert isinstance(optimizer, torch.optim.SGD) and isinstance(step.rule, rule_type)
    if variant == "official_fd":
        assert step.rule == OfficialFiniteDifferenceGAM(
            grad_rho=0.02, grad_norm_rho=0.2, alpha=0.6, beta=0.5, gamma=0.03
        )
