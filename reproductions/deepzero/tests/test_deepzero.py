"""deepzero: CGE and RGE against hand computations of finite differences, masks, the step's update and budget,
BatchNorm statistics, bad knobs and a smoke run."""

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
from reproductions.deepzero.estimators import active_count, cge, random_masks, rge
from reproductions.deepzero.step import ZO_STREAM, build_zo_step

A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]])
B = np.array([1.0, -2.0, 0.5])
THETA = np.array([0.4, -0.7, 1.1])


def quadratic():
    """f(theta) = b.theta + theta^T A theta / 2 on one float64 parameter; its forward difference along e_i is
    exactly (b + A theta)_i + mu A_ii / 2."""
    theta = torch.tensor(THETA, requires_grad=False)
    a, b = torch.tensor(A), torch.tensor(B)
    return theta, lambda: b @ theta + 0.5 * theta @ a @ theta


def test_cge_is_the_forward_difference_per_coordinate():
    theta, f = quadratic()
    mu = 0.01
    (estimate,) = cge(f, [theta], mu, f(), [None])
    np.testing.assert_allclose(estimate.numpy(), B + A @ THETA + 0.5 * mu * np.diag(A), rtol=1e-10)
    np.testing.assert_array_equal(theta.numpy(), THETA)  # every coordinate put back bit for bit


def test_cge_on_a_nonlinear_function_matches_a_hand_difference():
    theta = torch.tensor([0.3, -1.2], dtype=torch.float64)
    f = lambda: torch.sin(theta[0]) * theta[1] ** 2  # noqa: E731
    mu = 1e-3
    (estimate,) = cge(f, [theta], mu, f(), [None])
    base = np.sin(0.3) * 1.44
    by_hand = [(np.sin(0.3 + mu) * 1.44 - base) / mu, (np.sin(0.3) * (-1.2 + mu) ** 2 - base) / mu]
    np.testing.assert_allclose(estimate.numpy(), by_hand, rtol=1e-9)


def test_cge_on_a_channels_last_weight_equals_the_contiguous_one():
    weight = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = (torch.arange(24).reshape(2, 3, 2, 2) % 3 == 0).double()
    scale = torch.arange(24, dtype=torch.float64).reshape(2, 3, 2, 2)
    estimates = []
    for candidate in (weight.clone(), weight.clone().to(memory_format=torch.channels_last)):
        f = lambda: (scale * candidate**2).sum()  # noqa: E731
        (estimate,) = cge(f, [candidate], 1e-3, f(), [mask])
        estimates.append(estimate.contiguous())
        assert torch.equal(candidate, weight)
    torch.testing.assert_close(estimates[1], estimates[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(estimates[0], (scale * (2 * weight + 1e-3)) * mask, rtol=1e-8, atol=1e-12)


def test_rge_is_the_mean_of_directional_differences_times_directions():
    theta, f = quadratic()
    mu, queries = 0.01, 4
    (estimate,) = rge(f, [theta], mu, f(), [None], queries, torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)
    by_hand = np.zeros(3)
    for _ in range(queries):
        u = torch.randn(3, generator=draws, dtype=torch.float64).numpy()
        shifted = THETA + mu * u
        slope = ((B @ shifted + 0.5 * shifted @ A @ shifted) - (B @ THETA + 0.5 * THETA @ A @ THETA)) / mu
        by_hand += slope * u / queries
    np.testing.assert_allclose(estimate.numpy(), by_hand, rtol=1e-9)
    np.testing.assert_array_equal(theta.numpy(), THETA)


def test_rge_is_unbiased_for_a_linear_function():
    theta = torch.zeros(3, dtype=torch.float64)
    b = torch.tensor(B)
    (estimate,) = rge(
        lambda: b @ theta,
        [theta],
        0.1,
        torch.tensor(0.0, dtype=torch.float64),
        [None],
        20000,
        torch.Generator().manual_seed(0),
    )
    np.testing.assert_allclose(estimate.numpy(), B, atol=0.06)  # E[(b.u) u] = b; sd of each entry ~ 2.3 / sqrt(20000)


def test_masked_coordinates_get_a_zero_estimate_and_cost_no_query():
    weight = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(2, 3)
    mask = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    calls = []

    def f():
        calls.append(1)
        return (weight**2).sum()

    (estimate,) = cge(f, [weight], 1e-3, f(), [mask])
    assert len(calls) == 1 + 3 == 1 + active_count([weight], [mask])
    assert (estimate[mask == 0] == 0).all() and (estimate[mask == 1] != 0).all()
    (random_estimate,) = rge(f, [weight], 1e-3, f(), [mask], 5, torch.Generator().manual_seed(1))
    assert (random_estimate[mask == 0] == 0).all() and (random_estimate[mask == 1] != 0).all()


def test_random_masks_keep_the_ratio_per_weight_tensor_and_leave_biases_dense():
    params = [torch.zeros(10, 20), torch.zeros(10), torch.zeros(3, 10)]
    masks = random_masks(params, 0.9, torch.Generator().manual_seed(0))
    assert int(masks[0].sum()) == 20 and masks[1] is None and int(masks[2].sum()) == 3
    assert random_masks(params, 0.0, torch.Generator().manual_seed(0)) == [None, None, None]


def sgd_node(lr=1.0, **knobs):
    node = {
        "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": lr, "momentum": 0.0, "weight_decay": 0.0},
        "estimator": "cge",
        "mu": 1e-3,
        "queries": None,
        "sparsity": 0.0,
        "mask_interval": 5,
    }
    node.update(knobs)
    return OmegaConf.create(node)


def tanh_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()


BATCH = (
    torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0], [2.0, 0.5, -1.0]], dtype=torch.float64),
    torch.tensor([0, 1, 1]),
    None,
)


def one_step(model, epoch=0, strategy=None, **knobs):
    """-(theta_after - theta_before) of one step with SGD lr 1: the estimate the step applied."""
    if strategy is None:
        _, strategy = build_zo_step(
            sgd_node(**knobs), model, num_train_samples=3, num_classes=2, accumulate=1, grad_clip=None
        )
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    strategy.training_step(LocalBackend(model, loss_fn=nn.functional.cross_entropy), BATCH, epoch=epoch)
    return before - torch.cat([p.detach().reshape(-1) for p in model.parameters()]), strategy


def test_cge_step_applies_the_hand_forward_differences_and_spends_d_plus_one_queries():
    model = tanh_net()
    params = list(model.parameters())
    base = nn.functional.cross_entropy(model(BATCH[0]), BATCH[1]).item()
    by_hand = []
    for position, param in enumerate(params):
        for index in range(param.numel()):
            shifted = tanh_net()
            with torch.no_grad():
                list(shifted.parameters())[position].view(-1)[index] += 1e-3
            by_hand.append((nn.functional.cross_entropy(shifted(BATCH[0]), BATCH[1]).item() - base) / 1e-3)
    applied, strategy = one_step(model)
    np.testing.assert_allclose(applied.numpy(), by_hand, rtol=1e-9, atol=1e-12)
    assert strategy.last_queries == sum(p.numel() for p in params) + 1 == 27


def test_cge_and_rge_steps_approach_backprop_and_rge_spends_the_same_budget():
    first_order, _ = one_step(tanh_net(), estimator="first_order")
    coordinate, cge_step = one_step(tanh_net(), mu=1e-6)
    random, rge_step = one_step(tanh_net(), estimator="rge", mu=1e-6)
    assert float((coordinate - first_order).norm()) < 1e-5 * float(first_order.norm())
    assert rge_step.last_queries == cge_step.last_queries  # queries: null = CGE's active coordinates
    cosine = float(random @ first_order / (random.norm() * first_order.norm()))
    assert 0.2 < cosine < 0.999  # a noisy estimate of the same gradient


def test_sparse_step_updates_only_unmasked_weights_and_redraws_the_mask_each_interval():
    model = tanh_net()
    applied, strategy = one_step(model, sparsity=0.5, mask_interval=2)
    masks = strategy.masks
    flat_mask = torch.cat(
        [
            torch.ones(p.numel(), dtype=torch.float64) if m is None else m.reshape(-1)
            for p, m in zip(model.parameters(), masks)
        ]
    )
    assert (applied[flat_mask == 0] == 0).all()
    assert strategy.last_queries == int(flat_mask.sum()) + 1 == 6 + 4 + 4 + 2 + 1
    one_step(model, epoch=1, strategy=strategy)
    assert strategy.masks is masks  # same mask period
    one_step(model, epoch=2, strategy=strategy)
    assert any(not torch.equal(a, b) for a, b in zip(strategy.masks, masks) if a is not None)


def test_queries_leave_batchnorm_running_statistics_to_the_base_pass():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    reference = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    reference.load_state_dict(model.state_dict())
    reference(BATCH[0])  # one training-mode forward: the statistics one step should leave
    one_step(model, lr=0.0)
    assert torch.equal(model[1].running_mean, reference[1].running_mean)
    assert int(model[1].num_batches_tracked) == 1


def test_mask_and_direction_stream_is_seeded_from_the_run_seed():
    torch.manual_seed(3)
    _, first = one_step(tanh_net(), sparsity=0.5)
    torch.manual_seed(3)
    _, second = one_step(tanh_net(), sparsity=0.5)
    assert all(torch.equal(a, b) for a, b in zip(first.masks, second.masks) if a is not None)
    assert ZO_STREAM != 0


# Every bad knob of the step (DZKnobs; the optimizer node is open: base and the shared keys pass), through the config
# check on the composed smoke preset: (override, the exact line). accumulate and the world size stay code.
BAD_INPUTS = [
    (
        "optimizer.estimator=sge",
        "optimizer.estimator: unknown value 'sge'; valid choices: 'cge', 'rge' or 'first_order'",
    ),
    ("optimizer.mu=0", "optimizer.mu: must be > 0, got 0; set optimizer.mu above 0"),
    ("optimizer.mu=small", "optimizer.mu: 'small' is not a number; give a number, e.g. optimizer.mu=0.1"),
    ("~optimizer.mu", "optimizer.mu: missing; add it: +optimizer.mu=<value>"),
    ("optimizer.queries=0", "optimizer.queries: must be >= 1, got 0; set optimizer.queries to at least 1"),
    (
        "optimizer.queries=2.5",
        "optimizer.queries: 2.5 is not a whole number; give an integer, e.g. optimizer.queries=1",
    ),
    ("optimizer.sparsity=1.0", "optimizer.sparsity: must be < 1, got 1.0; set optimizer.sparsity below 1"),
    ("optimizer.sparsity=-0.1", "optimizer.sparsity: must be >= 0, got -0.1; set optimizer.sparsity to at least 0"),
    (
        "optimizer.mask_interval=0",
        "optimizer.mask_interval: must be >= 1, got 0; set optimizer.mask_interval to at least 1",
    ),
    (
        "optimizer.mask_interval=true",
        "optimizer.mask_interval: True is not a whole number; give an integer, e.g. optimizer.mask_interval=1",
    ),
    (
        "train.accumulate=2",
        "train.accumulate: 2 micro-batches per step; "
        "the zeroth-order step takes the whole batch at once: set train.accumulate=1",
    ),
    (
        "hardware=ddp_cpu",
        "hardware.devices: the zeroth-order step runs in one process; set hardware.devices=1 and hardware.num_nodes=1",
    ),
]


@pytest.mark.parametrize(("override", "line"), BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_names_the_key_problem_and_fix(override, line, tmp_path):
    overrides = ["+repro=dz_digits_smoke", override, "logger=csv"]
    assert stopped_before_any_work(overrides, tmp_path) == f"optrepro: error: {line}"


def test_bad_input_exits_2_with_one_line_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=dz_digits_smoke", "optimizer.sparsity=1.5", "logger=csv"], tmp_path, timeout=180)
    last = stderr.strip().splitlines()[-1]
    assert last == "optrepro: error: optimizer.sparsity: must be < 1, got 1.5; set optimizer.sparsity below 1", last


def test_smoke_run_finishes_with_a_record(tmp_path):
    record = run(compose_config(["+repro=dz_digits_smoke", "logger=csv"], tmp_path))
    assert record["status"] == "finished", record["error"]
    assert record["repro"]["arm"] == "cge" and record["metrics"]["final"]["train/loss"] > 0
