"""M-FAC (reproductions/mfac): the sliding-window IHVP against hand computations, a dense solve and the paper's
rank-one recursion; the window's oldest-first replacement against a recomputation; the optimizer step against
theta - lr F^{-1}(g + wd theta); bad knobs stopping before any work."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from helpers.rejected import rejected_run, stopped_before_any_work
from omegaconf import OmegaConf

from reproductions.mfac.callback import relative_error
from reproductions.mfac.ihvp import SlidingWindowIHVP, dense_ihvp, recursive_ihvp
from reproductions.mfac.optimizer import MFAC
from reproductions.mfac.step import build_mfac_step

F64 = torch.float64


def random_grads(rows: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_hand_check_of_the_reference_notes():
    """lambda = 1e-5, m = 2: F = diag(0.5 + 1e-5, 1e-5) then diag(0.5 + 1e-5, 2 + 1e-5)."""
    window = SlidingWindowIHVP(2, 2, 1e-5, dtype=F64)
    window.insert(torch.tensor([1.0, 0.0], dtype=F64))
    # rel 1e-9: v - G^T K^{-1} G v cancels to ~lambda |v| before the division by lambda
    assert window.solve(torch.tensor([1.0, 0.0], dtype=F64)).tolist() == pytest.approx([1 / 0.50001, 0.0], rel=1e-9)
    window.insert(torch.tensor([0.0, 2.0], dtype=F64))
    assert window.solve(torch.tensor([0.0, 2.0], dtype=F64)).tolist() == pytest.approx([0.0, 2 / 2.00001], rel=1e-9)
    assert window.solve(torch.tensor([1.0, 1.0], dtype=F64)).tolist() == pytest.approx([1.99996, 0.4999975], rel=1e-6)


@pytest.mark.parametrize("damp", [1e-5, 1e-2, 1.0])
def test_ihvp_equals_a_dense_solve_and_the_recursion(damp):
    grads, vector = random_grads(8, 50, 0), random_grads(1, 50, 1)[0]
    window = SlidingWindowIHVP(50, 8, damp, dtype=F64)
    for g in grads:
        window.insert(g)
    g_np = grads.numpy()
    dense = np.linalg.solve(damp * np.eye(50) + g_np.T @ g_np / 8, vector.numpy())
    dense = torch.from_numpy(dense)
    assert relative_error(window.solve(vector), dense) < 1e-9
    assert relative_error(recursive_ihvp(grads, damp, vector), dense) < 1e-9
    assert relative_error(dense_ihvp(grads, damp, vector), dense) < 1e-9


def test_a_part_filled_window_counts_its_zero_rows_in_the_mean():
    """Before m gradients the zero rows still divide by m (official zero-initialised ring buffer)."""
    grads, vector = random_grads(3, 20, 2), random_grads(1, 20, 3)[0]
    window = SlidingWindowIHVP(20, 8, 1e-3, dtype=F64)
    for g in grads:
        window.insert(g)
    padded = torch.cat([grads, torch.zeros(5, 20, dtype=F64)])
    assert torch.allclose(window.solve(vector), dense_ihvp(padded, 1e-3, vector), rtol=1e-9, atol=0)


def test_sliding_window_drops_the_oldest_and_equals_a_recomputation():
    grads = random_grads(8 + 5, 200, 4)
    vector = grads[-8:].T @ random_grads(1, 8, 5)[0]  # in the window's span: another window's IHVP differs a lot
    sliding = SlidingWindowIHVP(200, 8, 1e-4, dtype=F64)
    for g in grads:
        sliding.insert(g)
    fresh = SlidingWindowIHVP(200, 8, 1e-4, dtype=F64)
    for g in grads[-8:]:
        fresh.insert(g)
    assert torch.equal(sliding.window(), grads[-8:])
    assert torch.allclose(
        sliding.gram, fresh.gram[torch.roll(torch.arange(8), 5)][:, torch.roll(torch.arange(8), 5)], rtol=1e-12, atol=0
    )
    reference = dense_ihvp(grads[-8:], 1e-4, vector)
    assert relative_error(sliding.solve(vector), reference) < 1e-8
    assert relative_error(fresh.solve(vector), reference) < 1e-8
    assert relative_error(sliding.solve(vector), dense_ihvp(grads[-9:-1], 1e-4, vector)) > 0.5  # a window off by one


def test_optimizer_step_is_theta_minus_lr_times_the_ihvp_of_the_decayed_gradient():
    start, grads = random_grads(1, 12, 6)[0], random_grads(5, 12, 7)
    lr, decay, damp = 0.05, 0.1, 1e-3
    a = torch.nn.Parameter(start[:7].clone())
    b = torch.nn.Parameter(start[7:].clone().reshape(5, 1))
    optimizer = MFAC(
        [a, b], functools.partial(torch.optim.SGD, lr=lr), ngrads=3, damp=damp, decay=decay, window_dtype="float64"
    )
    seen = []
    for g in grads:
        theta = torch.cat([a.detach().reshape(-1), b.detach().reshape(-1)])
        a.grad, b.grad = g[:7].clone(), g[7:].clone().reshape(5, 1)
        seen.append(g + decay * theta)
        optimizer.step()
        window = torch.stack(seen[-3:] + [torch.zeros(12, dtype=F64)] * (3 - len(seen[-3:])))  # zero rows count
        expected = theta - lr * dense_ihvp(window, damp, seen[-1])
        assert torch.allclose(
            torch.cat([a.detach().reshape(-1), b.detach().reshape(-1)]), expected, rtol=1e-9, atol=1e-12
        )


def test_builder_moves_decay_into_the_gradient_and_keeps_no_decay_groups():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    cfg = OmegaConf.create(
        {
            "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "weight_decay": 0.01},
            "weight_decay_mode": "coupled",
            "no_decay_norm_and_bias": True,
            "ngrads": 4,
            "damp": 1e-4,
            "window_dtype": "float32",
        }
    )
    optimizer, _ = build_mfac_step(cfg, model, num_train_samples=10, num_classes=2, accumulate=1, grad_clip=None)
    assert sorted(g["mfac_decay"] for g in optimizer.param_groups) == [0.0, 0.01]
    assert all(g["weight_decay"] == 0.0 for g in optimizer.param_groups)
    assert optimizer.window.m == 4 and optimizer.window.damp == 1e-4 and optimizer.window.grads.shape == (4, 24)


# (override on mfac_smoke, the exact line): MFACKnobs (the optimizer node, open: base and the shared keys pass) and
# IHVPErrorKnobs (callbacks.mfac_ihvp_error, closed); orthogonal_grad relates to the step and stays code.
BAD_KNOBS = [
    ("optimizer.ngrads=0", "optimizer.ngrads: must be >= 1, got 0; set optimizer.ngrads to at least 1"),
    ("optimizer.ngrads=2.5", "optimizer.ngrads: 2.5 is not a whole number; give an integer, e.g. optimizer.ngrads=1"),
    ("optimizer.damp=0", "optimizer.damp: must be > 0, got 0; set optimizer.damp above 0"),
    ("optimizer.damp=-1e-3", "optimizer.damp: must be > 0, got -0.001; set optimizer.damp above 0"),
    (
        "optimizer.window_dtype=half",
        "optimizer.window_dtype: unknown value 'half'; valid choices: 'float32' or 'float64'",
    ),
    ("~optimizer.window_dtype", "optimizer.window_dtype: missing; add it: +optimizer.window_dtype=<value>"),
    (
        "optimizer.orthogonal_grad=true",
        "optimizer.orthogonal_grad: not available with M-FAC; set optimizer.orthogonal_grad=false",
    ),
    (
        "callbacks.mfac_ihvp_error.every=0",
        "callbacks.mfac_ihvp_error.every: must be >= 1, got 0; set callbacks.mfac_ihvp_error.every to at least 1",
    ),
    (
        "callbacks.mfac_ihvp_error.every=x",
        "callbacks.mfac_ihvp_error.every: 'x' is not a whole number; give an integer, e.g. "
        "callbacks.mfac_ihvp_error.every=1",
    ),
    (
        "+callbacks.mfac_ihvp_error.evry=2",
        "callbacks.mfac_ihvp_error.evry: not a config key (misspelled, or added with + where nothing reads it); "
        "check the spelling; the keys here are _target_, every",
    ),
]


@pytest.mark.parametrize("override, line", BAD_KNOBS, ids=[row[0] for row in BAD_KNOBS])
def test_bad_knobs_stop_in_one_line_before_the_run_folder(override, line, tmp_path):
    assert stopped_before_any_work(["+repro=mfac_smoke", override], tmp_path) == f"optrepro: error: {line}"


def test_a_bad_knob_exits_2_with_one_line_before_the_run_has_a_folder(tmp_path):
    stderr = rejected_run(["+repro=mfac_smoke", "optimizer.window_dtype=half"], tmp_path, timeout=120)
    assert stderr == (
        "optrepro: error: optimizer.window_dtype: unknown value 'half'; valid choices: 'float32' or 'float64'\n"
    )


def test_the_ihvp_callback_added_by_its_target_alone_measures_every_epoch():
    from reproductions.mfac.callback import IHVPErrorCallback

    assert IHVPErrorCallback().every == 1 and IHVPErrorCallback(every=5).every == 5
