"""grad_reg: the GR step's update against a hand computation (exact on a quadratic), the finite differences' first-
order error against double backprop, bad knobs, a smoke run and the cost task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.compose import compose_config
from helpers.rejected import rejected_run, stopped_before_any_work
from omegaconf import OmegaConf
from torch import nn

from optrepro.optim.backend import LocalBackend
from optrepro.train import run
from reproductions.grad_reg.step import build_gr_step

X = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0], [2.0, 0.5, -1.0], [-1.0, 1.5, 0.0]])
Y = np.array([0.5, -1.0, 2.0, 0.0])
W0 = np.array([0.3, -0.1, 0.2])


def half_square(outputs, targets):
    return 0.5 * (outputs.squeeze(-1) - targets).pow(2).mean()


def step_direction(model, loss_fn, batch, method, gamma=0.3, epsilon=0.01):
    """-(w_after - w_before) of one step with SGD lr 1, no momentum: the step's update direction."""
    node = OmegaConf.create(
        {
            "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0},
            "method": method,
            "gamma": gamma,
            "epsilon": epsilon,
        }
    )
    optimizer, strategy = build_gr_step(node, model, num_train_samples=4, num_classes=2, accumulate=1, grad_clip=None)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    strategy.training_step(LocalBackend(model, loss_fn=loss_fn), batch, epoch=0)
    return before - torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def linear_model():
    model = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor(W0)[None])
    return model


@pytest.mark.parametrize("method", ["double_backprop", "fd_forward", "fd_backward"])
def test_quadratic_loss_update_is_the_gradient_of_the_penalised_loss(method):
    # L = mean 0.5 (x.w - y)^2: g = X^T (X w - y) / n, H = X^T X / n, grad of L + (gamma/2)||g||^2 = g + gamma H g;
    # on a quadratic a finite difference of gradients is H g exactly (up to rounding)
    gamma = 0.3
    g = X.T @ (X @ W0 - Y) / len(Y)
    expected = g + gamma * (X.T @ X / len(Y)) @ g
    batch = (torch.tensor(X), torch.tensor(Y), None)
    direction = step_direction(linear_model(), half_square, batch, method, gamma=gamma, epsilon=0.37)
    np.testing.assert_allclose(direction.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_method_none_is_the_plain_gradient():
    direction = step_direction(linear_model(), half_square, (torch.tensor(X), torch.tensor(Y), None), "none")
    np.testing.assert_allclose(direction.numpy(), X.T @ (X @ W0 - Y) / len(Y), rtol=1e-12)


def tanh_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def test_finite_differences_match_double_backprop_to_first_order():
    batch = (torch.tensor(X), torch.tensor([0, 1, 1, 0]), None)
    loss = nn.functional.cross_entropy
    exact = step_direction(tanh_net(), loss, batch, "double_backprop")
    errors = {}
    for method in ("fd_forward", "fd_backward"):
        for epsilon in (1e-2, 5e-3):
            errors[method, epsilon] = step_direction(tanh_net(), loss, batch, method, epsilon=epsilon) - exact
    for method in ("fd_forward", "fd_backward"):
        ratio = float(errors[method, 1e-2].norm() / errors[method, 5e-3].norm())
        assert 1.8 < ratio < 2.2, f"{method}: halving epsilon should halve the O(epsilon) error, ratio {ratio}"
    # the O(epsilon) terms of the forward and backward differences cancel in their mean (a central difference)
    central = 0.5 * (errors["fd_forward", 1e-2] + errors["fd_backward", 1e-2])
    assert float(central.norm()) < 0.05 * float(errors["fd_forward", 1e-2].norm())
    assert float(errors["fd_forward", 1e-2].norm()) < 0.01 * float(exact.norm())


METHODS = "valid choices: 'none', 'double_backprop', 'fd_forward' or 'fd_backward'"
# (preset, override, the exact line): GRKnobs (the optimizer node, open: base and the shared keys pass) and
# GRCostKnobs (callbacks.gr_cost, closed); train.accumulate relates to the step and stays code.
BAD_KNOBS = [
    ("gr_smoke", "optimizer.method=central", f"optimizer.method: unknown value 'central'; {METHODS}"),
    ("gr_smoke", "optimizer.gamma=-0.1", "optimizer.gamma: must be >= 0, got -0.1; set optimizer.gamma to at least 0"),
    (
        "gr_smoke",
        "optimizer.gamma=abc",
        "optimizer.gamma: 'abc' is not a number; give a number, e.g. optimizer.gamma=0.1",
    ),
    ("gr_smoke", "optimizer.epsilon=0", "optimizer.epsilon: must be > 0, got 0; set optimizer.epsilon above 0"),
    (
        "gr_smoke",
        "train.accumulate=2",
        "train.accumulate: 2 micro-batches per step; "
        "the gradient-regularization step takes the whole batch at once: set train.accumulate=1",
    ),
    (
        "gr_cost_cpu",
        "callbacks.gr_cost.steps=0",
        "callbacks.gr_cost.steps: must be >= 1, got 0; set callbacks.gr_cost.steps to at least 1",
    ),
    (
        "gr_cost_cpu",
        "callbacks.gr_cost.batches=1.5",
        "callbacks.gr_cost.batches: 1.5 is not a whole number; give an integer, e.g. callbacks.gr_cost.batches=1",
    ),
    (
        "gr_cost_cpu",
        "callbacks.gr_cost.repetitions=true",
        "callbacks.gr_cost.repetitions: True is not a whole number; give an integer, e.g. "
        "callbacks.gr_cost.repetitions=1",
    ),
    (
        "gr_cost_cpu",
        "callbacks.gr_cost.momentum=2",
        "callbacks.gr_cost.momentum: must be <= 1, got 2; set callbacks.gr_cost.momentum to at most 1",
    ),
    (
        "gr_cost_cpu",
        "+callbacks.gr_cost.stepz=3",
        "callbacks.gr_cost.stepz: not a config key (misspelled, or added with + where nothing reads it); check the "
        "spelling; the keys here are _target_, batches, epsilon, gamma, lr, momentum, repetitions, steps",
    ),
]


@pytest.mark.parametrize("preset, override, line", BAD_KNOBS)
def test_bad_knobs_stop_in_one_line_before_the_run_folder(preset, override, line, tmp_path):
    assert stopped_before_any_work([f"+repro={preset}", override, "logger=csv"], tmp_path) == f"optrepro: error: {line}"


def test_bad_knob_exits_2_with_one_line_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=gr_smoke", "optimizer.method=central", "logger=csv"], tmp_path, timeout=180)
    assert stderr.strip().splitlines()[-1].startswith("optrepro: error: optimizer.method: unknown value")


def test_smoke_run_and_cost_callback_finish_with_records(tmp_path):
    record = run(compose_config(["+repro=gr_smoke", "logger=csv"], tmp_path))
    assert record["status"] == "finished", record["error"]
    assert record["metrics"]["final"]["train/loss"] > 0
    cost = run(
        compose_config(
            [
                "+repro=gr_cost_cpu",
                "callbacks.gr_cost.repetitions=1",
                "callbacks.gr_cost.steps=2",
                "callbacks.gr_cost.batches=1",
                "dataset.train_subset=256",
                "logger=csv",
            ],
            tmp_path / "c",
        )
    )
    assert cost["status"] == "finished", cost["error"]
    final = cost["metrics"]["final"]
    assert final["cost/fd_forward_cpu_s_per_step"] > 0 and final["cost/fd_forward_over_double_backprop"] > 0
