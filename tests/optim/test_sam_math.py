"""SAM/ASAM/SAM-ON arithmetic against closed forms on a quadratic, in float64."""

from __future__ import annotations

import functools

import pytest
import torch

from optrepro.optim.sam import SAM

RHO, LR, ETA, EPS = 0.3, 0.1, 0.01, 1e-12

VARIANTS = {
    # second tensor: perturbed?, rescaled by |w| + eta under ASAM? (false = a bias)
    "sam": dict(adaptive=False, second_perturb=True, second_adaptive_scale=True),
    "asam": dict(adaptive=True, second_perturb=True, second_adaptive_scale=False),
    "sam_on": dict(adaptive=False, second_perturb=False, second_adaptive_scale=True),
    "asam_on": dict(adaptive=True, second_perturb=False, second_adaptive_scale=True),
}
BASES = {
    "sgd": dict(momentum=0.0, weight_decay=0.0, in_perturbation=False),
    "sgd_momentum": dict(momentum=0.9, weight_decay=0.0, in_perturbation=False),
    "sgd_wd_torch": dict(momentum=0.9, weight_decay=0.05, in_perturbation=False),
    "sgd_wd_in_perturbation": dict(momentum=0.9, weight_decay=0.05, in_perturbation=True),
}


def quadratic(dim: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    root = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    A = root @ root.T / dim + torch.eye(dim, dtype=torch.float64)
    b = torch.randn(dim, generator=generator, dtype=torch.float64)
    w0 = torch.randn(dim, generator=generator, dtype=torch.float64)
    return A, b, w0


def expected_sam_trajectory(
    w, A, b, *, steps, adaptive, perturbed, adaptive_scale, momentum, weight_decay, in_perturbation
):
    """Closed-form SAM/ASAM steps with torch-SGD momentum; ``perturbed``/``adaptive_scale`` are masks."""
    buffer = None
    for _ in range(steps):
        g = A @ w - b + (weight_decay * w if in_perturbation else 0.0)
        scale = torch.where(adaptive_scale, w.abs() + ETA, 1.0) if adaptive else torch.ones_like(w)
        norm = (scale * g)[perturbed].norm()
        e = torch.where(perturbed, RHO * scale**2 * g / (norm + EPS), 0.0)
        g_perturbed = A @ (w + e) - b + (weight_decay * e if in_perturbation else 0.0)
        direction = g_perturbed + weight_decay * w
        buffer = direction if buffer is None else momentum * buffer + direction
        w = w - LR * buffer
    return w


def set_quadratic_grads(params, A, b):
    w = torch.cat([p.detach() for p in params])
    g = A @ w - b
    for p, piece in zip(params, g.split([p.numel() for p in params])):
        p.grad = piece.clone()


@pytest.mark.parametrize("base_name", BASES)
@pytest.mark.parametrize("variant_name", VARIANTS)
def test_two_steps_match_closed_form(variant_name, base_name):
    variant, base = VARIANTS[variant_name], BASES[base_name]
    A, b, w0 = quadratic()
    first, second = w0[:3].clone().requires_grad_(), w0[3:].clone().requires_grad_()
    groups = [
        {"params": [first]},
        {"params": [second], "perturb": variant["second_perturb"], "adaptive_scale": variant["second_adaptive_scale"]},
    ]
    sgd = functools.partial(torch.optim.SGD, lr=LR, momentum=base["momentum"], weight_decay=base["weight_decay"])
    optimizer = SAM(
        groups,
        sgd,
        rho=RHO,
        adaptive=variant["adaptive"],
        eta=ETA,
        eps=EPS,
        weight_decay_in_perturbation=base["in_perturbation"],
    )
    for _ in range(2):
        set_quadratic_grads([first, second], A, b)
        optimizer.perturb()
        set_quadratic_grads([first, second], A, b)
        optimizer.step()

    second_mask = torch.tensor([True] * 3 + [variant["second_perturb"]] * 2)
    scale_mask = torch.tensor([True] * 3 + [variant["second_adaptive_scale"]] * 2)
    expected = expected_sam_trajectory(
        w0,
        A,
        b,
        steps=2,
        adaptive=variant["adaptive"],
        perturbed=second_mask,
        adaptive_scale=scale_mask,
        momentum=base["momentum"],
        weight_decay=base["weight_decay"],
        in_perturbation=base["in_perturbation"],
    )
    torch.testing.assert_close(torch.cat([first.detach(), second.detach()]), expected, rtol=1e-13, atol=1e-13)


def test_weight_decay_modes_give_different_steps():
    """The knob must matter: L2-in-loss and torch-SGD decay are different algorithms."""
    A, b, w0 = quadratic()
    common = dict(
        steps=1,
        adaptive=False,
        perturbed=torch.ones(5, dtype=torch.bool),
        adaptive_scale=torch.ones(5, dtype=torch.bool),
        momentum=0.0,
        weight_decay=0.05,
    )
    torch_sgd = expected_sam_trajectory(w0, A, b, in_perturbation=False, **common)
    l2_in_loss = expected_sam_trajectory(w0, A, b, in_perturbation=True, **common)
    assert (torch_sgd - l2_in_loss).abs().max() > 1e-6


def test_restore_is_bit_exact():
    """Subtracting e_w would not give w back for these values; restore() must."""
    torch.manual_seed(0)
    param = (torch.rand(1000) * 1e-6).requires_grad_()
    clean = param.detach().clone()
    param.grad = torch.randn(1000)
    optimizer = SAM([param], functools.partial(torch.optim.SGD, lr=0.1), rho=0.3)
    optimizer.perturb()
    e_w = optimizer.state[param]["sam_clean_param"].neg().add(param.detach())
    assert not torch.equal(param.detach() - e_w, clean), "precondition: w + e - e must be inexact here"
    optimizer.restore()
    assert torch.equal(param.detach(), clean)
    assert not optimizer.is_perturbed


def test_parameters_without_grad_are_skipped():
    used, unused = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    used.grad = torch.tensor([3.0, 0.0, 4.0], dtype=torch.float32)
    optimizer = SAM([used, unused], functools.partial(torch.optim.SGD, lr=0.1), rho=0.5)
    norm = optimizer.perturb()
    assert norm.item() == pytest.approx(5.0)
    torch.testing.assert_close(used.detach(), torch.tensor([1.3, 1.0, 1.4]))
    assert torch.equal(unused.detach(), torch.ones(2))


def test_closure_step_equals_perturb_then_step():
    """The davda54-style ``step(closure)`` runs the same arithmetic as perturb()/step()."""
    A, b, w0 = quadratic()
    w = w0.clone().requires_grad_()
    optimizer = SAM([w], functools.partial(torch.optim.SGD, lr=LR), rho=RHO)

    def closure():
        loss = 0.5 * w @ A @ w - b @ w
        loss.backward()
        return loss

    closure()
    optimizer.step(closure)
    torch.testing.assert_close(w.detach(), w0 - LR * (A @ (w0 + RHO * (A @ w0 - b) / (A @ w0 - b).norm()) - b))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda opt: (opt.perturb(), opt.perturb()), "perturb\\(\\) called twice"),
        (lambda opt: (opt.perturb(), opt.state_dict()), "while perturbed"),
    ],
)
def test_misuse_is_reported(call, message):
    param = torch.ones(2, requires_grad=True)
    param.grad = torch.ones(2)
    optimizer = SAM([param], functools.partial(torch.optim.SGD, lr=0.1), rho=0.05)
    with pytest.raises(RuntimeError, match=message):
        call(optimizer)


@pytest.mark.parametrize(("kwargs", "message"), [({"rho": -0.1}, "rho >= 0"), ({"eta": -1.0}, "eta >= 0")])
def test_invalid_hyperparameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAM([torch.ones(1, requires_grad=True)], functools.partial(torch.optim.SGD, lr=0.1), **{"rho": 0.05, **kwargs})


def test_scheduler_on_sam_moves_base_learning_rate():
    param = torch.ones(2, requires_grad=True)
    optimizer = SAM([param], functools.partial(torch.optim.SGD, lr=0.1), rho=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    param.grad = torch.ones(2)
    optimizer.step()
    scheduler.step()
    assert optimizer.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
