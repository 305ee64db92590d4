"""Lion-K (Chen et al., ICLR 2024, arXiv 2310.05898) against hand computations and the paper's two guarantees, in
float64.

* each step equals the paper's update written in the paper's sign convention (momentum of the negative gradient);
* Phase 1: with decoupled weight decay lambda, ||lambda x||_dual - 1 shrinks at least by (1 - lr lambda) per step
  while outside the constraint set, and a point inside never leaves it (l_inf box for K = l1, l_2 ball for l2,
  l_1 ball for linf);
* the limit is the constrained minimizer (checked against projected gradient descent on a quadratic);
* Phase 2: the paper's Lyapunov function H(x, m) is non-increasing along the (Euler-integrated) Lion-K ODE once
  x is in the constraint set.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from helpers.compose import compose_optimizer
from torch import nn

from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.optim.factory import KNOWN_WEIGHT_DECAY_MODES, build_optimizer
from optrepro.optim.lion import DUAL_NORM_ORD, K_CHOICES, Lion, dual_norm
from optrepro.optim.standard import StandardStep

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
F64 = torch.float64


# ---- the paper's update, written independently of optim/lion.py ---------------------------------------------
def grad_k(v: torch.Tensor, k: str) -> torch.Tensor:
    if k == "l1":
        return torch.sign(v)
    if k == "l2":
        n = math.sqrt(float((v * v).sum()))
        return v / n if n > 0 else torch.zeros_like(v)
    flat = v.reshape(-1)
    i = int(flat.abs().argmax())
    out = torch.zeros_like(flat)
    out[i] = 1.0 if flat[i] > 0 else (-1.0 if flat[i] < 0 else 0.0)
    return out.reshape(v.shape)


def paper_step(x, m, g, *, lr, beta1, beta2, lam, k):
    """m_{t+1} = b2 m_t - (1 - b2) g;  x_{t+1} = x_t + lr (grad K(b1 m_t - (1 - b1) g) - lam x_t)."""
    direction = grad_k(beta1 * m - (1 - beta1) * g, k)
    return x + lr * (direction - lam * x), beta2 * m - (1 - beta2) * g


def quadratic(dim=6, seed=0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    root = torch.randn(dim, dim, generator=gen, dtype=F64)
    A = root @ root.T / dim + 0.5 * torch.eye(dim, dtype=F64)
    b = scale * torch.randn(dim, generator=gen, dtype=F64)
    x0 = scale * torch.randn(dim, generator=gen, dtype=F64)
    return A, b, x0


def loss_fn(A, b):
    return lambda x: 0.5 * (x - b) @ A @ (x - b)


CASES = {
    # name: (k, lr, betas, weight_decay)
    "lion_no_decay": ("l1", 0.05, (0.9, 0.99), 0.0),
    "lion_decay": ("l1", 0.05, (0.9, 0.99), 0.3),
    "lion_betas_equal": ("l1", 0.02, (0.95, 0.95), 1.0),
    "l2_decay": ("l2", 0.1, (0.9, 0.99), 0.3),
    "l2_no_decay": ("l2", 0.1, (0.8, 0.9), 0.0),
    "linf_decay": ("linf", 0.1, (0.9, 0.99), 0.3),
}


@pytest.mark.parametrize("case", CASES)
def test_each_step_equals_the_paper_update(case):
    k, lr, (b1, b2), lam = CASES[case]
    A, b, x0 = quadratic()
    M = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=F64)  # a second tensor, 2-d
    f = loss_fn(A, b)
    x = nn.Parameter(x0.clone())
    w = nn.Parameter(M.clone())
    opt = Lion([x, w], lr=lr, betas=(b1, b2), weight_decay=lam, k=k)
    ex, em = x0.clone(), torch.zeros_like(x0)
    ew, emw = M.clone(), torch.zeros_like(M)
    for _ in range(5):
        opt.zero_grad()
        (f(x) + (w**3).sum()).backward()
        gx, gw = A @ (ex - b), 3 * ew**2
        ex, em = paper_step(ex, em, gx, lr=lr, beta1=b1, beta2=b2, lam=lam, k=k)
        ew, emw = paper_step(ew, emw, gw, lr=lr, beta1=b1, beta2=b2, lam=lam, k=k)
        opt.step()
        torch.testing.assert_close(x.detach(), ex, rtol=0, atol=1e-12)
        torch.testing.assert_close(w.detach(), ew, rtol=0, atol=1e-12)
        # the optimizer keeps the gradient's momentum: the paper's m with the sign flipped
        torch.testing.assert_close(opt.state[x]["exp_avg"], -em, rtol=0, atol=1e-12)


def test_first_step_by_hand():
    """One step from m = 0 written out: x1 = (1 - lr lam) x0 - lr sign((1 - b1) g)."""
    x = nn.Parameter(torch.tensor([2.0, -0.5, 0.0, 1.0], dtype=F64))
    x.grad = torch.tensor([0.3, 0.3, -2.0, 0.0], dtype=F64)
    Lion([x], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5).step()
    expected = torch.tensor([2.0 * 0.95 - 0.1, -0.5 * 0.95 - 0.1, 0.0 + 0.1, 0.95], dtype=F64)
    torch.testing.assert_close(x.detach(), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("k", K_CHOICES)
def test_state_dict_round_trip(k):
    A, b, x0 = quadratic()
    f = loss_fn(A, b)

    def make():
        p = nn.Parameter(x0.clone())
        return p, Lion([p], lr=0.05, weight_decay=0.2, k=k)

    def steps(p, opt, n):
        for _ in range(n):
            opt.zero_grad()
            f(p).backward()
            opt.step()

    p1, o1 = make()
    steps(p1, o1, 3)
    saved = copy.deepcopy(o1.state_dict())  # as a checkpoint would: state_dict() aliases the live tensors
    p2, o2 = make()
    with torch.no_grad():
        p2.copy_(p1)
    o2.load_state_dict(saved)
    assert o2.param_groups[0]["k"] == k and o2.param_groups[0]["betas"] == (0.9, 0.99)
    steps(p1, o1, 4)
    steps(p2, o2, 4)
    torch.testing.assert_close(p1.detach(), p2.detach(), rtol=0, atol=0)
    torch.testing.assert_close(o1.state[p1]["exp_avg"], o2.state[p2]["exp_avg"], rtol=0, atol=0)


@pytest.mark.parametrize("k", K_CHOICES)
def test_iterates_enter_the_constraint_set_at_rate_one_minus_lr_lambda_and_stay(k):
    """||lambda x_{t+1}|| <= (1 - lr lam) ||lambda x_t|| + lr lam  =>  excess_t <= (1 - lr lam)^t excess_0."""
    lam, lr = 0.5, 0.02
    A, b, _ = quadratic(scale=6.0)  # the unconstrained minimizer b lies far outside every ball of radius 2
    x0 = torch.full((6,), 40.0, dtype=F64) * torch.tensor([1, -1, 1, 1, -1, 1], dtype=F64)
    f = loss_fn(A, b)
    x = nn.Parameter(x0.clone())
    opt = Lion([x], lr=lr, betas=(0.9, 0.99), weight_decay=lam, k=k)
    rate = 1 - lr * lam

    def value():
        return lam * float(dual_norm(x, k))

    excess0 = value() - 1
    assert excess0 > 10
    entered_at, trace = None, []
    for t in range(1, 3001):
        before = value()
        opt.zero_grad()
        f(x).backward()
        opt.step()
        now = value()
        trace.append(now)
        assert now - 1 <= rate * (before - 1) + 1e-12 or now <= 1 + 1e-12  # the per-step contraction
        assert now - 1 <= rate**t * excess0 + 1e-12  # the cumulative rate
        # (for linf the iterate can approach the boundary from outside: "inside" is up to 1e-9)
        if entered_at is None and now <= 1 + 1e-9:
            entered_at = t
        if entered_at is not None:
            assert now <= 1 + 1e-9, f"left the constraint set at step {t}"
    assert entered_at is not None
    # it cannot enter faster than the decay alone allows: lam |x| shrinks by at most (1 - lr lam) plus lr lam
    assert entered_at >= math.log(1 / (1 + excess0)) / math.log(rate) * 0.5
    assert max(trace[-100:]) > 0.99  # the minimizer is outside: the constraint is active at the end


def projected_gd(A, b, radius, ord_, steps=20000):
    """Reference constrained minimizer of 0.5 (x-b)^T A (x-b) over {||x||_ord <= radius} (ord inf: box; 2: ball)."""
    x = torch.zeros_like(b)
    step = 1 / float(torch.linalg.eigvalsh(A).max())
    for _ in range(steps):
        x = x - step * (A @ (x - b))
        if ord_ == float("inf"):
            x = x.clamp(-radius, radius)
        else:
            n = float(torch.linalg.vector_norm(x))
            if n > radius:
                x = x * (radius / n)
    return x


@pytest.mark.parametrize("k", ["l1", "l2"])
def test_lion_k_solves_the_constrained_problem(k):
    """With a decaying lr, Lion-K's iterate approaches argmin f s.t. ||x||_dual <= 1/lambda (Lion: the box)."""
    lam = 0.5
    A, b, x0 = quadratic(scale=3.0)
    f = loss_fn(A, b)
    target = projected_gd(A, b, 1 / lam, DUAL_NORM_ORD[k])
    assert float(torch.linalg.vector_norm(target - b)) > 1.0  # the constraint changes the answer
    x = nn.Parameter(x0.clone())
    opt = Lion([x], lr=0.05, betas=(0.9, 0.99), weight_decay=lam, k=k)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + t / 200))
    for _ in range(20000):
        opt.zero_grad()
        f(x).backward()
        opt.step()
        sched.step()
    assert float(torch.linalg.vector_norm(x.detach() - target, ord=float("inf"))) < 0.02


# ---- Phase 2: the Lyapunov function ------------------------------------------------------------------------
def k_value(m, k):
    return float(torch.linalg.vector_norm(m, ord={"l1": 1.0, "l2": 2.0, "linf": float("inf")}[k]))


@pytest.mark.parametrize("k", ["l1", "l2"])
def test_lyapunov_function_decreases_once_inside_the_constraint_set(k):
    """The paper's continuous-time Lion-K with alpha = gamma,
        x' = grad K(m~) - lam x,  m' = -alpha grad f(x) - gamma m,  m~ = m - eps (alpha grad f(x) + gamma m),
    is Euler-integrated by Lion itself: lr = dt, beta2 = 1 - dt gamma, beta1 = 1 - eps gamma (m = -exp_avg).
    Inside dom K* (K*(lam x) = 0) the Lyapunov function
        H(x, m) = alpha f(x) + gamma/lam K*(lam x) + (1 - eps gamma)/(1 + eps lam) (K*(lam x) + K(m) - lam m.x)
    must not increase (up to the O(dt) error of the Euler scheme at sign switches)."""
    lam, gamma, eps, dt = 0.2, 0.05, 0.5, 2e-3
    alpha = gamma
    A, b, x0 = quadratic(dim=5, seed=3, scale=4.0)
    f = loss_fn(A, b)
    x = nn.Parameter(x0.clone() * 3)
    opt = Lion([x], lr=dt, betas=(1 - eps * gamma, 1 - dt * gamma), weight_decay=lam, k=k)
    coef = (1 - eps * gamma) / (1 + eps * lam)
    inside_values, f_values, outside_steps = [], [], 0
    for _ in range(20000):
        m = -opt.state[x]["exp_avg"] if opt.state[x] else torch.zeros_like(x)
        inside = lam * float(dual_norm(x, k)) <= 1 + 1e-12
        if inside:
            xd = x.detach()
            inside_values.append(alpha * float(f(xd)) + coef * (k_value(m, k) - lam * float(m @ xd)))
            f_values.append(float(f(xd)))
        else:
            assert not inside_values, "x left the constraint set after entering it"
            outside_steps += 1
        opt.zero_grad()
        f(x).backward()
        opt.step()
    assert outside_steps > 0 and len(inside_values) > 10000  # it started outside (Phase 1) and then entered
    H = torch.tensor(inside_values, dtype=F64)
    rise = float((H[1:] - H[:-1]).max())
    assert rise < 1e-6, f"H rose by {rise:.2e}"
    assert float(H[0] - H[-1]) > 0.01  # and it does decrease
    if k == "l1":
        # f alone is not a Lyapunov function of these dynamics: with momentum it goes up at times
        fv = torch.tensor(f_values, dtype=F64)
        assert float((fv[1:] - fv[:-1]).max()) > 1e-5 > rise


# ---- errors and configs ------------------------------------------------------------------------------------
def test_unknown_k_names_the_valid_ones():
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(UnknownChoiceError, match="unknown optimizer.base.k 'l3'; valid choices: l1, l2, linf"):
        Lion([p], k="l3")
    opt = Lion([p], k="l1")
    opt.param_groups[0]["k"] = "huber"
    p.grad = torch.ones(2)
    with pytest.raises(UnknownChoiceError, match="valid choices: l1, l2, linf"):
        opt.step()


@pytest.mark.parametrize("bad", [{"lr": -1.0}, {"betas": (1.1, 0.9)}, {"weight_decay": -0.1}])
def test_bad_hyperparameters_fail(bad):
    with pytest.raises(ValueError):
        Lion([nn.Parameter(torch.zeros(2))], **bad)


def test_shipped_config_builds_a_decoupled_lion():
    assert KNOWN_WEIGHT_DECAY_MODES[Lion] == "decoupled"
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt, strategy = build_optimizer(compose_optimizer("lion"), model, num_train_samples=10, num_classes=2)
    assert isinstance(opt, Lion) and isinstance(strategy, StandardStep)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"], group["k"]) == (1e-4, (0.9, 0.99), 0.5, "l1")
    opt, _ = build_optimizer(
        compose_optimizer("lion", "optimizer.base.k=l2"), model, num_train_samples=10, num_classes=2
    )
    assert opt.param_groups[0]["k"] == "l2"


def test_config_with_coupled_decay_is_rejected():
    cfg = compose_optimizer("lion", "optimizer.weight_decay_mode=coupled")
    with pytest.raises(ConfigError, match="Lion applies decoupled weight decay"):
        build_optimizer(cfg, nn.Linear(2, 2), num_train_samples=10, num_classes=2)


def test_config_with_unknown_k_names_the_valid_ones():
    cfg = compose_optimizer("lion", "optimizer.base.k=huber")
    with pytest.raises(Exception, match="valid choices: l1, l2, linf"):
        build_optimizer(cfg, nn.Linear(2, 2), num_train_samples=10, num_classes=2)
