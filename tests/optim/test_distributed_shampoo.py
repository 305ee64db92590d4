"""Distributed Shampoo (Shi et al. 2023) against a dense Kronecker reference per block, hand computations, and
on two gloo processes against the single-process optimizer, in float64.

The dense reference builds each block's full statistic as a Kronecker product of its bias-corrected,
epsilon-shifted factors and applies its -1/(2k) power to the flattened block by one eigendecomposition.
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.compose import compose_optimizer
from helpers.gloo import end_process_group
from helpers.optimizer_checks import assert_resume_is_exact
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from optrepro.errors import ConfigError
from optrepro.optim.distributed_shampoo import (
    DistributedShampoo,
    block_slices,
    merged_shape,
)
from optrepro.optim.factory import KNOWN_WEIGHT_DECAY_MODES, build_optimizer
from optrepro.optim.standard import StandardStep

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
F64 = torch.float64
PURE = {"betas": (0.0, 1.0), "grafting_type": "none", "start_preconditioning_step": 0}  # Shampoo alone


# ---- the dense reference, written independently of optim/distributed_shampoo.py -------------------------------
def dense_power(matrix, power):
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.pow(power)) @ vectors.T


def reference_blocks(shape, size):
    """Index ranges of the blocks, row-major: each dimension cut into runs of `size`."""
    ranges = [torch.arange(n).split(size) for n in shape]
    return [tuple(slice(int(r[0]), int(r[-1]) + 1) for r in combo) for combo in itertools.product(*ranges)]


def dense_block_step(grads, epsilon, beta2=1.0):
    """(⊗_i (H_i / (1 - beta2^t) + eps I))^{-1/(2k)} vec(G_t), H_i the EMA (or sum) of G_(i) G_(i)^T."""
    t, shape = len(grads), grads[0].shape
    weights = [1.0] * t if beta2 == 1.0 else [(1 - beta2) * beta2 ** (t - 1 - s) for s in range(t)]
    correction = 1.0 if beta2 == 1.0 else 1 - beta2**t
    factors = []
    for i, n in enumerate(shape):
        h = sum(
            w * g.movedim(i, 0).reshape(n, -1) @ g.movedim(i, 0).reshape(n, -1).T
            for w, g in zip(weights, grads, strict=True)
        )
        factors.append(h / correction + epsilon * torch.eye(n, dtype=F64))
    full = functools.reduce(torch.kron, factors)
    return (dense_power(full, -1.0 / (2 * len(shape))) @ grads[-1].reshape(-1)).reshape(shape)


def dense_step(grads, epsilon, size, beta2=1.0):
    """The whole parameter's Shampoo direction, block by block."""
    out = torch.empty_like(grads[-1])
    for block in reference_blocks(grads[-1].shape, size):
        out[block] = dense_block_step([g[block] for g in grads], epsilon, beta2)
    return out


def random_grads(shape, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=gen, dtype=F64) for _ in range(steps)]


def run(shape, grads, w0=None, **kwargs):
    """Apply `grads` one by one; returns the parameter after each step and the optimizer.

    Dimensions are not merged unless a test asks (use_merge_dims=True), so the blocks are those of `shape`."""
    kwargs.setdefault("use_merge_dims", False)
    p = nn.Parameter(torch.zeros(shape, dtype=F64) if w0 is None else w0.clone())
    opt = DistributedShampoo([p], **kwargs)
    seen = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        seen.append(p.detach().clone())
    return seen, opt


# ---- blocking and the dense reference ---------------------------------------------------------------------------
CASES = {  # shape, max_preconditioner_dim, beta2
    "matrix_one_block": ((4, 3), 8, 1.0),
    "matrix_blocked": ((5, 3), 2, 1.0),
    "matrix_blocked_ema": ((5, 3), 2, 0.9),
    "vector_blocked": ((5,), 3, 0.99),
    "order_3_blocked": ((3, 2, 4), 2, 1.0),
    "order_3_blocked_ema": ((3, 2, 4), 3, 0.5),
}


@pytest.mark.parametrize("case", CASES)
def test_every_block_steps_as_the_dense_kronecker_reference(case):
    shape, size, beta2 = CASES[case]
    lr, epsilon, steps = 0.3, 0.05, 4
    grads = random_grads(shape, steps)
    seen, _ = run(shape, grads, lr=lr, epsilon=epsilon, max_preconditioner_dim=size, **{**PURE, "betas": (0.0, beta2)})
    expected = torch.zeros(shape, dtype=F64)
    for t in range(steps):
        expected = expected - lr * dense_step(grads[: t + 1], epsilon, size, beta2)
        torch.testing.assert_close(seen[t], expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize(
    ("shape", "size", "merged"),
    [
        ((64, 3, 3, 3), 1024, (576, 3)),
        ((3, 4, 5), 20, (12, 5)),
        ((1, 7, 1), 4, (7,)),
        ((), 5, (1,)),
        ((5, 7), 3, (5, 7)),
        ((2, 2, 9), 4, (4, 9)),
    ],
)
def test_small_dimensions_merge_left_to_right_while_they_fit(shape, size, merged):
    assert merged_shape(shape, size) == merged


def test_merged_dimensions_are_preconditioned_as_the_merged_tensor():
    """(3, 2, 4) with blocks of 6: Shampoo sees the 6x4 matrix (exponent -1/4), not an order-3 tensor (-1/6)."""
    epsilon, grads = 0.05, random_grads((3, 2, 4), 3, seed=11)
    seen, _ = run((3, 2, 4), grads, lr=1.0, epsilon=epsilon, max_preconditioner_dim=6, use_merge_dims=True, **PURE)
    expected = dense_step([g.reshape(6, 4) for g in grads], epsilon, 6).reshape(3, 2, 4)
    torch.testing.assert_close(seen[1] - seen[2], expected, rtol=0, atol=1e-12)


def test_scalar_parameter_is_a_vector_of_length_one():
    """H = g^2, step g / sqrt(g^2 + eps)."""
    p = nn.Parameter(torch.tensor(2.0, dtype=F64))
    p.grad = torch.tensor(-3.0, dtype=F64)
    DistributedShampoo([p], lr=1.0, epsilon=1.0, **PURE).step()
    assert p.shape == () and math.isclose(float(p.detach()), 2.0 + 3.0 / math.sqrt(10.0), rel_tol=0, abs_tol=1e-15)


@pytest.mark.parametrize(
    ("shape", "size", "blocks"),
    [
        (
            (5, 7),
            3,
            [
                ((0, 3), (0, 3)),
                ((0, 3), (3, 6)),
                ((0, 3), (6, 7)),
                ((3, 5), (0, 3)),
                ((3, 5), (3, 6)),
                ((3, 5), (6, 7)),
            ],
        ),
        ((4,), 4, [((0, 4),)]),
        ((2, 9), 4, [((0, 2), (0, 4)), ((0, 2), (4, 8)), ((0, 2), (8, 9))]),
    ],
)
def test_blocks_split_every_long_dimension_at_max_preconditioner_dim(shape, size, blocks):
    assert [tuple((s.start, s.stop) for s in b) for b in block_slices(shape, size)] == blocks
    _, opt = run(shape, random_grads(shape, 1), max_preconditioner_dim=size)
    state = next(iter(opt.state.values()))["blocks"]
    for index, block in enumerate(blocks):
        assert [tuple(h.shape) for h in state[index]["statistics"]] == [(b - a, b - a) for a, b in block]


# ---- EMA statistics, first moment, precondition_frequency -------------------------------------------------------
def test_ema_statistic_and_first_moment_by_hand():
    """Two gradients of a 2-vector: H = b2 (1 - b2) g1 g1^T + (1 - b2) g2 g2^T; M = b1 (1 - b1) g1 + (1 - b1) g2."""
    g1, g2 = torch.tensor([1.0, -2.0], dtype=F64), torch.tensor([3.0, 0.5], dtype=F64)
    b1, b2 = 0.9, 0.8
    _, opt = run((2,), [g1, g2], betas=(b1, b2), grafting_type="sgd", start_preconditioning_step=5)
    state = next(iter(opt.state.values()))["blocks"][0]
    expected_h = b2 * (1 - b2) * torch.outer(g1, g1) + (1 - b2) * torch.outer(g2, g2)
    torch.testing.assert_close(state["statistics"][0], expected_h, rtol=0, atol=1e-15)
    torch.testing.assert_close(state["first_moment"], b1 * (1 - b1) * g1 + (1 - b1) * g2, rtol=0, atol=1e-15)


def test_beta1_filters_the_gradient_shampoo_preconditions():
    """With beta1 the direction is R M_hat, M_hat = M / (1 - b1^t), R the (unchanged) root of the statistics."""
    b1, epsilon = 0.7, 0.1
    grads = random_grads((3,), 2, seed=3)
    seen, _ = run((3,), grads, lr=1.0, epsilon=epsilon, **{**PURE, "betas": (b1, 1.0)})
    m_hat = (b1 * (1 - b1) * grads[0] + (1 - b1) * grads[1]) / (1 - b1**2)
    h = sum(torch.outer(g, g) for g in grads) + epsilon * torch.eye(3, dtype=F64)
    torch.testing.assert_close(seen[0] - seen[1], dense_power(h, -0.5) @ m_hat, rtol=0, atol=1e-12)


def test_precondition_frequency_reuses_the_roots_until_a_multiple_of_it():
    """frequency 2: roots at step 1 (none yet), 2, 4; step 3 uses step 2's statistics."""
    epsilon, grads = 0.05, random_grads((3, 2), 4, seed=4)
    seen, _ = run((3, 2), grads, lr=1.0, epsilon=epsilon, precondition_frequency=2, **PURE)
    steps = [-seen[0]] + [seen[t - 1] - seen[t] for t in range(1, 4)]
    left, right = (
        sum(g.T @ g if i else g @ g.T for g in grads[:2]) + epsilon * torch.eye(n, dtype=F64)
        for i, n in enumerate((3, 2))
    )
    stale = dense_power(left, -0.25) @ grads[2] @ dense_power(right, -0.25)
    torch.testing.assert_close(steps[2], stale, rtol=0, atol=1e-12)
    torch.testing.assert_close(steps[3], dense_step(grads, epsilon, 8), rtol=0, atol=1e-12)


# ---- grafting and start_preconditioning_step ---------------------------------------------------------------------
def graft_steps(kind, grads, graft_eps, graft_beta2):
    """The graft method's own step at every t, written out per method (no beta1)."""
    second, out = torch.zeros_like(grads[0]), []
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            out.append(g)
            continue
        beta = 1.0 if kind == "adagrad" else graft_beta2
        second = second + g * g if beta == 1.0 else beta * second + (1 - beta) * g * g
        corrected = second / (1 - graft_beta2**t) if kind == "adam" else second
        out.append(g / (corrected.sqrt() + graft_eps))
    return out


GRAFTS = ("sgd", "adagrad", "rmsprop", "adam")


@pytest.mark.parametrize("kind", GRAFTS)
def test_before_start_preconditioning_step_the_step_is_the_graft_methods(kind):
    graft_eps, graft_beta2, lr = 1e-3, 0.9, 0.5
    grads = random_grads((4, 3), 3, seed=5)
    seen, opt = run(
        (4, 3),
        grads,
        lr=lr,
        betas=(0.0, 1.0),
        grafting_type=kind,
        grafting_epsilon=graft_eps,
        grafting_beta2=graft_beta2,
        start_preconditioning_step=4,
        precondition_frequency=2,
    )
    expected = torch.zeros(4, 3, dtype=F64)
    for t, step in enumerate(graft_steps(kind, grads, graft_eps, graft_beta2)):
        expected = expected - lr * step
        torch.testing.assert_close(seen[t], expected, rtol=0, atol=1e-14)
    assert next(iter(opt.state.values()))["blocks"][0]["inverse_roots"] is None  # no root before the start


@pytest.mark.parametrize("kind", GRAFTS)
def test_grafted_step_has_the_graft_norm_per_block_and_shampoos_direction(kind):
    graft_eps, graft_beta2, epsilon, size = 1e-2, 0.9, 0.05, 2
    grads = random_grads((3, 4), 3, seed=6)
    seen, _ = run(
        (3, 4),
        grads,
        lr=1.0,
        epsilon=epsilon,
        betas=(0.0, 1.0),
        max_preconditioner_dim=size,
        grafting_type=kind,
        grafting_epsilon=graft_eps,
        grafting_beta2=graft_beta2,
        start_preconditioning_step=0,
    )
    step = seen[1] - seen[2]
    graft = graft_steps(kind, grads, graft_eps, graft_beta2)[-1]
    shampoo = dense_step(grads, epsilon, size)
    for block in reference_blocks((3, 4), size):
        expected = shampoo[block] * graft[block].norm() / shampoo[block].norm()
        torch.testing.assert_close(step[block], expected, rtol=0, atol=1e-12)


def test_start_minus_one_means_precondition_frequency():
    p = nn.Parameter(torch.zeros(2))
    assert DistributedShampoo([p], precondition_frequency=7).param_groups[0]["start_preconditioning_step"] == 7


# ---- weight decay, momentum -------------------------------------------------------------------------------------
@pytest.mark.parametrize("nesterov", [False, True])
def test_decoupled_weight_decay_and_momentum_act_on_the_grafted_direction(nesterov):
    """d = D + wd W (not in the statistics); buf = mu buf + d; W -= lr (d + mu buf if Nesterov else buf)."""
    lr, wd, mu, epsilon = 0.1, 0.3, 0.9, 0.05
    grads = random_grads((2, 3), 3, seed=7)
    w0 = torch.randn(2, 3, generator=torch.Generator().manual_seed(8), dtype=F64)
    seen, _ = run(
        (2, 3), grads, w0, lr=lr, weight_decay=wd, momentum=mu, use_nesterov=nesterov, epsilon=epsilon, **PURE
    )
    w, buf = w0.clone(), torch.zeros_like(w0)
    for t in range(3):
        d = dense_step(grads[: t + 1], epsilon, 8) + wd * w
        buf = mu * buf + d
        w = w - lr * (d + mu * buf if nesterov else buf)
        torch.testing.assert_close(seen[t], w, rtol=0, atol=1e-12)


# ---- contracts --------------------------------------------------------------------------------------------------
def test_non_finite_gradient_gives_nan_weights_not_an_error():
    p = nn.Parameter(torch.ones(3, 2, dtype=F64))
    p.grad = torch.full((3, 2), float("inf"), dtype=F64)
    DistributedShampoo([p], start_preconditioning_step=0).step()
    assert torch.isnan(p.detach()).all()


def test_state_dict_round_trip():
    def make():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()
        return model, DistributedShampoo(
            model.parameters(),
            lr=0.05,
            betas=(0.9, 0.99),
            momentum=0.5,
            weight_decay=0.01,
            max_preconditioner_dim=2,
            precondition_frequency=3,
            start_preconditioning_step=3,
            grafting_type="adam",
            grafting_beta2=0.99,
        )

    # saved after 4 steps: past the start, mid-way between two root recomputations
    assert_resume_is_exact(make, torch.randn(8, 5, dtype=F64, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"lr": -1.0}, "lr must be >= 0"),
        ({"betas": (1.0, 0.9)}, r"beta1 \(betas\[0\]\) must lie in \[0, 1\)"),
        ({"betas": (0.9, 0.0)}, r"beta2 \(betas\[1\]\) must lie in \(0, 1\]"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"epsilon": 0.0}, "epsilon must be > 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
        ({"max_preconditioner_dim": 0}, "max_preconditioner_dim must be an integer >= 1"),
        ({"precondition_frequency": 2.5}, "precondition_frequency must be an integer >= 1"),
        ({"start_preconditioning_step": -2}, "start_preconditioning_step must be an integer >= 0, or -1"),
        ({"grafting_type": "lamb"}, "grafting_type must be one of none, sgd, adagrad, rmsprop, adam"),
        ({"grafting_epsilon": 0.0}, "grafting_epsilon must be > 0"),
        ({"grafting_beta2": 1.5}, r"grafting_beta2 must lie in \(0, 1\]"),
    ],
)
def test_bad_hyperparameters_fail_with_the_rule(bad, message):
    with pytest.raises(ValueError, match=message):
        DistributedShampoo([nn.Parameter(torch.zeros(2))], **bad)


# ---- config -----------------------------------------------------------------------------------------------------
def test_shipped_config_builds_distributed_shampoo_with_decoupled_decay():
    assert KNOWN_WEIGHT_DECAY_MODES[DistributedShampoo] == "decoupled"
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt, strategy = build_optimizer(
        compose_optimizer("distributed_shampoo"), model, num_train_samples=10, num_classes=2
    )
    assert isinstance(opt, DistributedShampoo) and isinstance(strategy, StandardStep)
    group = opt.param_groups[0]
    assert (group["grafting_type"], group["betas"], group["epsilon"]) == ("adam", (0.9, 0.999), 1e-12)
    model(torch.randn(5, 3)).square().sum().backward()
    opt.step()


def test_config_with_coupled_decay_is_rejected():
    cfg = compose_optimizer("distributed_shampoo", "optimizer.weight_decay_mode=coupled")
    with pytest.raises(ConfigError, match="DistributedShampoo applies decoupled weight decay"):
        build_optimizer(cfg, nn.Linear(2, 2), num_train_samples=10, num_classes=2)


# ---- two gloo processes -----------------------------------------------------------------------------------------
WORLD_SIZE, STEPS, RESUMED_STEPS = 2, 5, 3
DIST_KWARGS = {
    "lr": 0.1,
    "betas": (0.9, 0.99),
    "momentum": 0.5,
    "weight_decay": 0.01,
    "max_preconditioner_dim": 3,
    "precondition_frequency": 2,
    "start_preconditioning_step": 2,
    "grafting_type": "adam",
    "grafting_beta2": 0.99,
    "grafting_epsilon": 1e-8,
}


def dist_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 2)).double()


def dist_grads():
    """The gradients every rank sees at each step: what DDP's all-reduce leaves, identical on all ranks."""
    gen = torch.Generator().manual_seed(2)
    shapes = [p.shape for p in dist_model().parameters()]
    return [[torch.randn(shape, generator=gen, dtype=F64) for shape in shapes] for _ in range(STEPS + RESUMED_STEPS)]


def train(model, opt, steps=slice(0, STEPS)):
    for grads in dist_grads()[steps]:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def train_on_a_batch(model, opt):
    """The same batch on every rank: DDP's average of equal gradients is that gradient exactly."""
    x = torch.randn(6, 7, generator=torch.Generator().manual_seed(3), dtype=F64)
    for _ in range(STEPS):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def run_rank(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    model = dist_model()
    opt = DistributedShampoo(model.parameters(), **DIST_KWARGS)
    params = train(model, opt)
    # a collective: every block's state on every rank; taken before the ownership checks, which it must not change
    checkpoint = copy.deepcopy(opt.state_dict())
    owned = {(i, block) for i, p in enumerate(model.parameters()) for block in opt.state[p]["blocks"]}
    rooted = {
        (i, block)
        for i, p in enumerate(model.parameters())
        for block, s in opt.state[p]["blocks"].items()
        if s["inverse_roots"] is not None
    }
    mine = {key for key, owner in opt.block_owners().items() if owner == rank}
    resumed = dist_model()
    resumed.load_state_dict(model.state_dict())
    resumed_opt = DistributedShampoo(resumed.parameters(), **DIST_KWARGS)
    resumed_opt.load_state_dict(checkpoint)
    kept = {(i, block) for i, p in enumerate(resumed.parameters()) for block in resumed_opt.state[p]["blocks"]}
    resumed_params = train(resumed, resumed_opt, slice(STEPS, None))
    ddp = DistributedDataParallel(dist_model())
    ddp_params = train_on_a_batch(ddp, DistributedShampoo(ddp.parameters(), **DIST_KWARGS))
    torch.save(
        {
            "params": params,
            "owned": sorted(owned),
            "rooted": sorted(rooted),
            "assigned": sorted(mine),
            "ddp_params": ddp_params,
            "checkpoint_blocks": sorted((i, b) for i, s in checkpoint["state"].items() for b in s["blocks"]),
            "kept": sorted(kept),
            "resumed_params": resumed_params,
        },
        Path(out_dir) / f"rank{rank}.pt",
    )
    del ddp  # its reducer goes before the group it uses
    end_process_group()


def test_two_gloo_ranks_split_the_blocks_and_match_the_single_process_update_bit_for_bit(tmp_path):
    mp.spawn(run_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    model = dist_model()
    single_opt = DistributedShampoo(model.parameters(), **DIST_KWARGS)
    single = train(model, single_opt)
    single_resumed = train(model, single_opt, slice(STEPS, None))
    all_blocks = {(i, b) for i, p in enumerate(model.parameters()) for b in range(len(block_slices(p.shape, 3)))}
    model = dist_model()
    single_on_a_batch = train_on_a_batch(model, DistributedShampoo(model.parameters(), **DIST_KWARGS))
    for result in ranks:  # every rank ends with the single-process weights, having rooted only its own blocks
        assert all(torch.equal(a, b) for a, b in zip(result["params"], single, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(result["ddp_params"], single_on_a_batch, strict=True))
        assert result["owned"] == result["rooted"] == result["assigned"]
        # the checkpoint holds every block; a rank resuming from it keeps its own and continues exactly
        assert {tuple(key) for key in result["checkpoint_blocks"]} == all_blocks
        assert result["kept"] == result["assigned"]
        assert all(torch.equal(a, b) for a, b in zip(result["resumed_params"], single_resumed, strict=True))
    owned = [{tuple(key) for key in result["owned"]} for result in ranks]
    assert owned[0] and owned[1] and not owned[0] & owned[1]
    assert owned[0] | owned[1] == all_blocks
