"""Large-step SGD and sparse features (reproductions/large_step_sparse): the sparsity measure by hand, the SGD and GD
steps of the diagonal linear network against their formulas and the loss's gradient, the step decay, knob errors and
a smoke run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from optrepro.errors import InvalidConfigError
from optrepro.paths import REPO_ROOT
from optrepro.train import run
from reproductions.large_step_sparse.dln import Problem, half_mse, make_problem, train
from reproductions.large_step_sparse.sparsity import beta_sparsity
from reproductions.large_step_sparse.task import validate


def test_sparsity_measure_by_hand():
    u = np.array([1.0, 0.5, 1e-3, 1e-30, 3.0])
    v = np.array([2.0, -1.0, 1e-3, 1e-30, 0.0])  # |beta| = 2, 0.5, 1e-6, 1e-60, 0
    out = beta_sparsity(u, v)
    assert out["sparsity/nnz_1e-50"] == 3 and out["sparsity/frac_nnz_1e-50"] == pytest.approx(0.6)
    assert out["sparsity/nnz_1e-4"] == 2 and out["sparsity/frac_nnz_1e-4"] == pytest.approx(0.4)
    assert out["sparsity/l1"] == pytest.approx(2.500001, rel=1e-12)
    diverged = beta_sparsity(np.array([np.nan, 1.0]), np.array([1.0, 1.0]))
    assert all(np.isnan(value) for value in diverged.values())  # not "0 nonzeros"


def tiny_problem() -> Problem:
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    beta_star = np.array([0.6, 0.8])
    return Problem(x, x @ beta_star, x, x @ beta_star, beta_star)


def test_one_sgd_step_by_hand():
    problem = tiny_problem()
    rng = np.random.default_rng(0)
    i = np.random.default_rng(0).integers(3, size=1)[0]  # the sample the run draws first
    (row,) = train(
        problem,
        rng,
        algorithm="sgd",
        lr=0.1,
        iterations=1,
        decay_at=None,
        decay_factor=1.0,
        init_scale=0.5,
        log_every=1,
    )
    u, v = np.full(2, 0.5), np.zeros(2)
    residual = problem.x[i] @ (u * v) - problem.y[i]  # = -y_i: beta starts at 0
    u1, v1 = u - 0.1 * residual * problem.x[i] * v, v - 0.1 * residual * problem.x[i] * u
    assert np.allclose(u1, 0.5) and np.allclose(v1, 0.1 * problem.y[i] * problem.x[i] * 0.5)
    assert row["train/loss"] == pytest.approx(half_mse(problem.x, u1 * v1, problem.y), rel=1e-12)


def test_gd_step_is_the_gradient_of_the_half_mse():
    problem = tiny_problem()
    u, v = np.array([0.3, -0.2]), np.array([0.1, 0.4])

    def loss(a, b):
        return half_mse(problem.x, a * b, problem.y)

    eps = 1e-6
    grad_u = np.array([(loss(u + eps * e, v) - loss(u - eps * e, v)) / (2 * eps) for e in np.eye(2)])
    residual = problem.x.T @ (problem.x @ (u * v) - problem.y) / 3
    assert np.allclose(residual * v, grad_u, atol=1e-8)
    (row,) = train(
        problem,
        np.random.default_rng(0),
        algorithm="gd",
        lr=0.2,
        iterations=1,
        decay_at=None,
        decay_factor=1.0,
        init_scale=0.5,
        log_every=1,
    )
    u0, v0 = np.full(2, 0.5), np.zeros(2)
    g0 = problem.x.T @ (problem.x @ (u0 * v0) - problem.y) / 3
    beta1 = (u0 - 0.2 * g0 * v0) * (v0 - 0.2 * g0 * u0)
    assert row["test/loss"] == pytest.approx(half_mse(problem.x, beta1, problem.y), rel=1e-12)


def test_the_step_is_divided_once_after_the_large_step_phase():
    problem = make_problem(np.random.default_rng([0, 0]), 10, 6, 2, 5)
    history = train(
        problem,
        np.random.default_rng(1),
        algorithm="sgd",
        lr=0.1,
        iterations=10,
        decay_at=0.3,
        decay_factor=4.0,
        init_scale=0.1,
        log_every=1,
    )
    assert [row["lr"] for row in history] == [0.1, 0.1, 0.1, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025]


def test_problem_matches_the_notebook_construction():
    problem = make_problem(np.random.default_rng([3, 0]), 80, 200, 20, 1000)
    assert problem.x.shape == (80, 200) and problem.x_test.shape == (1000, 200)
    assert np.count_nonzero(problem.beta_star) == 20 and (problem.beta_star >= 0).all()
    assert np.linalg.norm(problem.beta_star) == pytest.approx(1.0)
    assert np.allclose(problem.y, problem.x @ problem.beta_star)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("algorithm", "adam", r"^task\.algorithm: unknown value 'adam'; valid choices: gd, sgd$"),
        ("decay_at", 1.0, r"^task\.decay_at: must be < 1, got 1\.0; set task\.decay_at below 1$"),
        ("lr", -0.1, r"^task\.lr: must be > 0, got -0\.1; set task\.lr above 0$"),
        ("iterations", 0, r"^task\.iterations: must be >= 1, got 0; set task\.iterations to at least 1$"),
        ("n", True, r"^task\.n: True is not a whole number; give an integer, e\.g\. task\.n=1$"),
        ("r", 300, r"^task\.r: 300 nonzero coordinates do not fit in d = 200; set r <= d$"),
        ("lr_decay", 0.5, r"^task\.lr_decay: not a config key \(misspelled, "),
    ],
)
def test_bad_task_knobs_are_one_line_errors(key, value, message):
    cfg = OmegaConf.load(REPO_ROOT / "reproductions/large_step_sparse/configs/task/diag_net.yaml")
    cfg[key] = value
    with pytest.raises(InvalidConfigError, match=message):
        validate(OmegaConf.create({"task": cfg}))


def test_bad_knob_on_the_command_line_exits_2_before_any_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "run.py", "+repro=lss_dln_smoke", "task.algorithm=adam", f"paths.runs_dir={tmp_path}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "optrepro: error: task.algorithm: unknown value 'adam'; valid choices: gd, sgd"
    )
    assert not list(tmp_path.rglob("record.json"))


def test_smoke_preset_records_losses_and_sparsity(make_cfg):
    record = run(make_cfg(["+repro=lss_dln_smoke", "logger=csv"]))
    assert record["status"] == "finished", record["error"]
    assert [row["step"] for row in record["history"]] == [500, 1000, 1500, 2000]
    final = record["metrics"]["final"]
    assert final["sparsity/nnz_1e-50"] <= 200 and 0 <= final["sparsity/frac_nnz_1e-4"] <= 1
    assert final["test/loss"] < 0.5 and final["lr"] == pytest.approx(0.25 / 1.5)
