"""Shampoo (Gupta et al., ICML 2018) against a dense full-matrix reference, a hand computation and its contracts, in
float64.

The dense reference builds the full statistic of the flattened (row-major) gradient as a Kronecker product,
H = H_1 ⊗ ... ⊗ H_k, and applies H^{-1/(2k)} to vec(G) by an eigendecomposition of the whole
(n_1 ... n_k)^2 matrix: by the Kronecker identity this equals Shampoo's per-dimension step.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from helpers.compose import compose_optimizer
from helpers.optimizer_checks import assert_resume_is_exact
from torch import nn

from optrepro.errors import ConfigError
from optrepro.optim.factory import KNOWN_WEIGHT_DECAY_MODES, build_optimizer
from optrepro.optim.shampoo import Shampoo
from optrepro.optim.standard import StandardStep

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
F64 = torch.float64


# ---- the dense reference, written independently of optim/shampoo.py -------------------------------------------
def dense_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.pow(power)) @ vectors.T


def dense_statistics(grads: list[torch.Tensor], epsilon: float) -> list[torch.Tensor]:
    """H_i = epsilon I + sum_t G_t,(i) G_t,(i)^T for every dimension i of the gradients."""
    shape = grads[0].shape
    stats = []
    for i, n in enumerate(shape):
        h = epsilon * torch.eye(n, dtype=F64)
        for g in grads:
            rows = g.movedim(i, 0).reshape(n, -1)
            h = h + rows @ rows.T
        stats.append(h)
    return stats


def dense_step(grads: list[torch.Tensor], epsilon: float) -> torch.Tensor:
    """(H_1 ⊗ ... ⊗ H_k)^{-1/(2k)} vec(G_t) for the last gradient, reshaped back."""
    stats = dense_statistics(grads, epsilon)
    full = functools.reduce(torch.kron, stats)
    k = len(stats)
    g = grads[-1]
    return (dense_power(full, -1.0 / (2 * k)) @ g.reshape(-1)).reshape(g.shape)


def random_grads(shape, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen, dtype=F64) for _ in range(steps)]


SHAPES = {"matrix": (4, 3), "tall_matrix": (6, 2), "vector": (5,), "order_3": (3, 2, 4)}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_step_equals_the_dense_kronecker_preconditioned_step(shape):
    lr, epsilon, steps = 0.3, 0.05, 4
    grads = random_grads(SHAPES[shape], steps)
    w0 = torch.randn(*SHAPES[shape], generator=torch.Generator().manual_seed(9), dtype=F64)
    p = nn.Parameter(w0.clone())
    opt = Shampoo([p], lr=lr, epsilon=epsilon)
    expected = w0.clone()
    for t in range(steps):
        p.grad = grads[t].clone()
        opt.step()
        expected = expected - lr * dense_step(grads[: t + 1], epsilon)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-11)


def test_matrix_step_is_left_and_right_quarter_roots():
    """Algorithm 1: W - lr L^{-1/4} G R^{-1/4}, with L, R accumulated from epsilon I (dense roots here)."""
    grads = random_grads((4, 3), 3, seed=2)
    p = nn.Parameter(torch.zeros(4, 3, dtype=F64))
    opt = Shampoo([p], lr=1.0, epsilon=0.1)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    step_3 = -p.detach()
    p2 = nn.Parameter(torch.zeros(4, 3, dtype=F64))
    opt2 = Shampoo([p2], lr=1.0, epsilon=0.1)
    for g in grads[:2]:
        p2.grad = g.clone()
        opt2.step()
    left, right = dense_statistics(grads, 0.1)
    expected = dense_power(left, -0.25) @ grads[2] @ dense_power(right, -0.25)
    torch.testing.assert_close(step_3 - (-p2.detach()), expected, rtol=0, atol=1e-12)


def test_first_step_by_hand():
    """G = diag(3, -4): L = R = diag(eps + 9, eps + 16), so the step is diag(3 / sqrt(eps + 9), -4 / sqrt(eps + 16))."""
    eps, lr = 1.0, 0.5
    p = nn.Parameter(torch.ones(2, 2, dtype=F64))
    p.grad = torch.tensor([[3.0, 0.0], [0.0, -4.0]], dtype=F64)
    Shampoo([p], lr=lr, epsilon=eps).step()
    expected = torch.tensor([[1 - lr * 3 / math.sqrt(10), 1.0], [1.0, 1 + lr * 4 / math.sqrt(17)]], dtype=F64)
    torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-15)


def test_update_freq_reuses_the_inverse_roots_between_recomputations():
    """With update_freq 2, step 2 uses the roots of step 1's statistics; step 3 uses fresh ones."""
    epsilon, lr = 0.05, 0.2
    grads = random_grads((3, 2), 3, seed=4)
    p = nn.Parameter(torch.zeros(3, 2, dtype=F64))
    opt = Shampoo([p], lr=lr, epsilon=epsilon, update_freq=2)
    steps = []
    for g in grads:
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        steps.append((before - p.detach()) / lr)
    left, right = dense_statistics(grads[:1], epsilon)
    stale = dense_power(left, -0.25) @ grads[1] @ dense_power(right, -0.25)
    torch.testing.assert_close(steps[1], stale, rtol=0, atol=1e-12)
    torch.testing.assert_close(steps[2], dense_step(grads, epsilon), rtol=0, atol=1e-12)


def test_momentum_and_weight_decay():
    """Momentum accumulates preconditioned directions; coupled weight decay enters the gradient and the statistics."""
    epsilon, lr, mu, wd = 0.1, 0.1, 0.9, 0.3
    grads = random_grads((2, 3), 2, seed=5)
    w0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(6), dtype=F64)
    p = nn.Parameter(w0.clone())
    opt = Shampoo([p], lr=lr, epsilon=epsilon, momentum=mu, weight_decay=wd)
    w, buf, seen = w0.clone(), torch.zeros_like(w0), []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        seen.append(g + wd * w)
        buf = mu * buf + dense_step(seen, epsilon)
        w = w - lr * buf
        torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-12)


def test_long_dimensions_are_left_unpreconditioned():
    """max_preconditioner_dim 3 on a 5x2 matrix: only R (2x2) is kept; the step is G R^{-1/4} (exponent of order 2)."""
    grads = random_grads((5, 2), 2, seed=7)
    p = nn.Parameter(torch.zeros(5, 2, dtype=F64))
    opt = Shampoo([p], lr=1.0, epsilon=0.1, max_preconditioner_dim=3)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    assert opt.state[p]["statistics"][0] is None
    _, right = dense_statistics(grads, 0.1)
    _, right_1 = dense_statistics(grads[:1], 0.1)
    expected = grads[0] @ dense_power(right_1, -0.25) + grads[1] @ dense_power(right, -0.25)
    torch.testing.assert_close(-p.detach(), expected, rtol=0, atol=1e-12)


def test_params_without_gradient_keep_their_values_and_get_no_state():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).double()
    model[0].requires_grad_(False)
    frozen = [t.detach().clone() for t in model[0].parameters()]
    opt = Shampoo(model.parameters(), lr=0.1)
    model(torch.randn(5, 3, dtype=F64)).square().sum().backward()
    opt.step()
    for before, param in zip(frozen, model[0].parameters()):
        assert torch.equal(before, param.detach())
        assert param not in opt.state
    assert all(opt.state[q]["step"] == 1 for q in model[1].parameters())


def test_scalar_parameter_is_a_vector_of_length_one():
    """A 0-d parameter: H = eps + g^2, step g / sqrt(eps + g^2)."""
    p = nn.Parameter(torch.tensor(2.0, dtype=F64))
    p.grad = torch.tensor(-3.0, dtype=F64)
    Shampoo([p], lr=1.0, epsilon=1.0).step()
    assert p.shape == () and math.isclose(float(p.detach()), 2.0 + 3.0 / math.sqrt(10.0), rel_tol=0, abs_tol=1e-15)


def test_non_finite_gradient_gives_nan_weights_not_an_error():
    """A diverged run must end as `diverged` (NaN loss), not `failed` by an eigh error on a NaN statistic."""
    p = nn.Parameter(torch.ones(3, 2, dtype=F64))
    opt = Shampoo([p], lr=0.1)
    p.grad = torch.full((3, 2), float("inf"), dtype=F64)
    opt.step()
    assert torch.isnan(p.detach()).all()


def test_state_dict_round_trip():
    def make():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
        return model, Shampoo(model.parameters(), lr=0.05, momentum=0.5, update_freq=3)

    # saved after 4 steps: mid-way between two root recomputations
    assert_resume_is_exact(make, torch.randn(8, 4, dtype=F64, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"lr": -1.0}, "lr must be >= 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"epsilon": 0.0}, "epsilon must be > 0"),
        ({"update_freq": 0}, "update_freq must be an integer >= 1"),
        ({"update_freq": 2.5}, "update_freq must be an integer >= 1"),
        ({"max_preconditioner_dim": 0}, "max_preconditioner_dim must be an integer >= 1"),
    ],
)
def test_bad_hyperparameters_fail_with_the_rule(bad, message):
    with pytest.raises(ValueError, match=message):
        Shampoo([nn.Parameter(torch.zeros(2))], **bad)


# ---- configs ------------------------------------------------------------------------------------------------
def test_shipped_config_builds_the_papers_shampoo():
    assert KNOWN_WEIGHT_DECAY_MODES[Shampoo] == "coupled"
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt, strategy = build_optimizer(compose_optimizer("shampoo"), model, num_train_samples=10, num_classes=2)
    assert isinstance(opt, Shampoo) and isinstance(strategy, StandardStep)
    group = opt.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["update_freq"]) == (0.0, 0.0, 1)


def test_shipped_adam_config_builds_torch_adam():
    opt, _ = build_optimizer(compose_optimizer("adam"), nn.Linear(2, 2), num_train_samples=10, num_classes=2)
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 1e-3


def test_config_with_decoupled_decay_is_rejected():
    cfg = compose_optimizer("shampoo", "optimizer.weight_decay_mode=decoupled")
    with pytest.raises(ConfigError, match="Shampoo applies coupled weight decay"):
        build_optimizer(cfg, nn.Linear(2, 2), num_train_samples=10, num_classes=2)
