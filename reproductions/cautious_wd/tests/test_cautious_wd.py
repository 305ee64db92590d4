"""Cautious weight decay (reproductions/cautious_wd): the step against hand computations (SGD and Adam bases, the
mask's zero cases, the Table 2 ablation masks), the plain-decay mask against torch AdamW, the builder's groups, the
toy objectives' geometry, and bad knobs stopping before any work."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from helpers.rejected import rejected_run, stopped_before_any_work
from omegaconf import OmegaConf

from reproductions.cautious_wd.optimizer import CautiousWeightDecay
from reproductions.cautious_wd.step import build_cwd_step
from reproductions.cautious_wd.toy import objective_value, pareto_gap, start_point

X0 = [1.0, -2.0, 0.5, -0.5]
U = [0.3, 0.4, -0.2, -0.1]  # SGD without momentum: the update direction u is the gradient


def sgd_cwd_step(mask: str, x=X0, grad=U, lr=0.1, decay=0.5, seed=0) -> torch.Tensor:
    param = torch.nn.Parameter(torch.as_tensor(x, dtype=torch.float64).clone())
    optimizer = CautiousWeightDecay(
        [param], functools.partial(torch.optim.SGD, lr=lr), decay=decay, mask=mask, seed=seed
    )
    param.grad = torch.as_tensor(grad, dtype=torch.float64).clone()
    optimizer.step()
    return param.detach()


def test_cwd_sgd_step_equals_the_hand_computation():
    # mask I(u x >= 0) = (1, 0, 0, 1): x - lr (u + lambda mask x)
    assert sgd_cwd_step("update").tolist() == pytest.approx([0.92, -2.04, 0.52, -0.465], abs=1e-12)
    # plain decoupled decay: (1 - lr lambda) x - lr u
    assert sgd_cwd_step("all").tolist() == pytest.approx([0.92, -1.94, 0.495, -0.465], abs=1e-12)


def test_zero_update_is_decayed_and_zero_weight_stays():
    # u = 0 counts as agreeing (I(u x >= 0) = 1): decayed; x = 0 is "decayed" by 0
    assert sgd_cwd_step("update", x=[2.0, 0.0], grad=[0.0, 0.0]).tolist() == pytest.approx([1.9, 0.0], abs=1e-12)


def test_adam_base_first_step_by_hand():
    """Adam's first step is u = g / (|g| + eps) ~ sign(g) (bias-corrected), so with g = (0.5, 0.5), x = (1, -2):
    mask (1, 0); x1 = 1 - 0.1 (1 + 0.5 * 1) = 0.85, x2 = -2 - 0.1 * 1 = -2.1 (eps 1e-8 moves the 8th digit)."""
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = CautiousWeightDecay([param], functools.partial(torch.optim.Adam, lr=0.1), decay=0.5)
    param.grad = torch.tensor([0.5, 0.5], dtype=torch.float64)
    optimizer.step()
    assert param.detach().tolist() == pytest.approx([0.85, -2.1], abs=1e-7)
    assert optimizer.mask_counts() == (1.0, 2) and optimizer.mask_counts() == (0.0, 0)


def test_mask_all_is_torch_adamw():
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(50, generator=gen, dtype=torch.float64)
    grads = [torch.randn(50, generator=gen, dtype=torch.float64) for _ in range(6)]
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    wrapped = CautiousWeightDecay(
        [ours], functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.0), decay=0.3, mask="all"
    )
    adamw = torch.optim.AdamW([reference], lr=0.01, weight_decay=0.3)
    for grad in grads:
        ours.grad, reference.grad = grad.clone(), grad.clone()
        wrapped.step()
        adamw.step()
    assert torch.allclose(ours, reference, rtol=0, atol=1e-12)
    cautious = torch.nn.Parameter(start.clone())
    cwd = CautiousWeightDecay([cautious], functools.partial(torch.optim.AdamW, lr=0.01, weight_decay=0.0), decay=0.3)
    for grad in grads:
        cautious.grad = grad.clone()
        cwd.step()
    assert not torch.allclose(cautious, reference, atol=1e-6)  # the mask does change the trajectory


def test_gradient_mask_reads_the_gradient_not_the_update():
    """SGD momentum 0.9 after a first gradient of +1: the second gradient -0.5 gives buffer 0.9 - 0.5 = 0.4 > 0,
    so the update agrees with x = 1 (CWD decays) while the gradient does not (the gradient mask does not)."""

    def two_steps(mask):
        param = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = CautiousWeightDecay(
            [param], functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9), decay=0.5, mask=mask
        )
        for g in (1.0, -0.5):
            param.grad = torch.tensor([g], dtype=torch.float64)
            opt.step()
        return float(param)

    x1 = 1.0 - 0.1 * (1.0 + 0.5)  # step 1: u = 1, decayed under both masks: 0.85
    assert two_steps("update") == pytest.approx(x1 - 0.1 * (0.4 + 0.5 * x1))
    assert two_steps("gradient") == pytest.approx(x1 - 0.1 * 0.4)


def test_random_mask_has_the_cautious_fraction_and_is_seeded():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(20000, generator=gen, dtype=torch.float64)
    grad = torch.where(torch.arange(20000) < 5000, x, -x)  # u x >= 0 on exactly the first quarter

    def decayed(result):  # the decay lr * lambda * |x| >= 5e-6 here, far above round-off
        return (result - (x - 0.1 * grad)).abs() > 1e-9

    cautious_mask = decayed(sgd_cwd_step("update", x=x, grad=grad))
    assert torch.equal(cautious_mask, torch.arange(20000) < 5000)
    random_a = decayed(sgd_cwd_step("random", x=x, grad=grad, seed=7))
    random_b = decayed(sgd_cwd_step("random", x=x, grad=grad, seed=7))
    assert torch.equal(random_a, random_b)
    assert abs(random_a.double().mean() - 0.25) < 0.02  # 6 binomial standard deviations
    assert (random_a & cautious_mask).double().sum() / cautious_mask.sum() < 0.3  # not the CWD mask


def test_builder_moves_decay_out_of_the_base_and_keeps_no_decay_groups():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    cfg = OmegaConf.create(
        {
            "base": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3, "weight_decay": 0.2},
            "no_decay_norm_and_bias": True,
            "cwd_mask": "update",
        }
    )
    optimizer, _ = build_cwd_step(cfg, model, num_train_samples=8, num_classes=4, accumulate=1, grad_clip=None)
    decays = sorted((group["cautious_decay"], len(group["params"])) for group in optimizer.param_groups)
    assert decays == [(0.0, 3), (0.2, 1)]  # linear bias and BN weight/bias: no decay; the linear weight: lambda
    assert all(group["weight_decay"] == 0.0 for group in optimizer.base_optimizer.param_groups)
    with pytest.raises(ValueError, match="must run without weight decay"):
        CautiousWeightDecay(model.parameters(), functools.partial(torch.optim.AdamW, weight_decay=0.1), decay=0.1)


def test_toy_objectives_and_pareto_gap_by_hand():
    assert float(objective_value("circle", torch.tensor([3.0, 4.0]))) == 0.0
    assert float(objective_value("circle", torch.tensor([1.0, 1.0]))) == pytest.approx(49.0)  # (4 + 4 - 1)^2
    assert float(objective_value("parabola", torch.tensor([4.0, 4.0]))) == 0.0
    assert pareto_gap("circle", np.array([3 - np.sqrt(0.5), 3 - np.sqrt(0.5)])) == pytest.approx(0.0, abs=1e-6)
    assert pareto_gap("circle", np.array([3.0, 4.0])) == pytest.approx(np.sqrt(2), abs=1e-6)  # nearest end (2, 3)
    assert pareto_gap("parabola", np.array([4.0, 4.0])) == pytest.approx(np.sqrt(2), abs=1e-6)  # the vertex (3, 3)
    assert pareto_gap("parabola", np.array([1.0, 7.0])) == pytest.approx(0.0, abs=1e-4)  # sampled curve
    a, b = start_point(0, [0.5, 4.5], [1.5, 5.5]), start_point(1, [0.5, 4.5], [1.5, 5.5])
    assert (a != b).all() and (0.5 <= a[0] <= 1.5) and (4.5 <= a[1] <= 5.5)
    assert (start_point(0, [0.5, 4.5], [1.5, 5.5]) == a).all()


@pytest.mark.parametrize(
    "override,key", [("optimizer.cwd_mask=sometimes", "optimizer.cwd_mask"), ("task.steps=0", "task.steps")]
)
def test_bad_knobs_stop_before_any_work(override, key, tmp_path):
    preset = "cwd_smoke" if override.startswith("optimizer") else "cwd_toy_cpu"
    stderr = rejected_run([f"+repro={preset}", override], tmp_path, timeout=120)
    assert stderr.startswith(f"optrepro: error: {key}: ") and stderr.count("\n") == 1, stderr


MASKS = "valid choices: 'update', 'random', 'gradient' or 'all'"
# (preset, override, the exact line): CWDKnobs (the optimizer node, open: the base's keys pass) and ToyKnobs (the
# task node, closed); the init_low <= init_high rule relates two keys and stays code.
BAD_KNOBS = [
    ("cwd_smoke", "optimizer.cwd_mask=sometimes", f"optimizer.cwd_mask: unknown value 'sometimes'; {MASKS}"),
    ("cwd_smoke", "optimizer.cwd_mask=1", f"optimizer.cwd_mask: unknown value 1; {MASKS}"),
    (
        "cwd_smoke",
        "optimizer.orthogonal_grad=true",
        "optimizer.orthogonal_grad: not available with cautious weight decay; set optimizer.orthogonal_grad=false",
    ),
    (
        "cwd_smoke",
        "optimizer.orthogonal_grad=maybe",
        "optimizer.orthogonal_grad: 'maybe' is not true or false; "
        "set optimizer.orthogonal_grad=true or optimizer.orthogonal_grad=false",
    ),
    ("cwd_toy_cpu", "task.steps=0", "task.steps: must be >= 1, got 0; set task.steps to at least 1"),
    ("cwd_toy_cpu", "task.steps=1.5", "task.steps: 1.5 is not a whole number; give an integer, e.g. task.steps=1"),
    ("cwd_toy_cpu", "task.log_every=0", "task.log_every: must be >= 1, got 0; set task.log_every to at least 1"),
    (
        "cwd_toy_cpu",
        "task.objective=square",
        "task.objective: unknown value 'square'; valid choices: 'circle' or 'parabola'",
    ),
    ("cwd_toy_cpu", "task.init_low=[1.0]", "task.init_low: has 1 items, needs 2; give 2 items"),
    (
        "cwd_toy_cpu",
        "task.init_high=[1,x]",
        "task.init_high[1]: 'x' is not a number; give a number, e.g. task.init_high[1]=0.1",
    ),
    (
        "cwd_toy_cpu",
        "task.init_low=[2.0,4.5]",
        "task.init_low: is above task.init_high; give init_low <= init_high per coordinate",
    ),
    (
        "cwd_toy_cpu",
        "+task.stepz=3",
        "task.stepz: not a config key (misspelled, or added with + where nothing reads it); "
        "check the spelling; the keys here are _target_, init_high, init_low, log_every, objective, steps",
    ),
]


@pytest.mark.parametrize("preset, override, line", BAD_KNOBS)
def test_bad_knobs_stop_in_one_line_before_the_run_folder(preset, override, line, tmp_path):
    assert stopped_before_any_work([f"+repro={preset}", override], tmp_path) == f"optrepro: error: {line}"
