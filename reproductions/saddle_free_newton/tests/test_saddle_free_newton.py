"""Saddle-free Newton (reproductions/saddle_free_newton): Lanczos against eigh, the step on a hand-made saddle,
damping, the line search, knob errors and a smoke run."""

from __future__ import annotations

import math
import re

import pytest
import torch
from helpers.rejected import config_check_error
from torch import nn

from optrepro.errors import ConfigError
from optrepro.optim.backend import LocalBackend
from optrepro.train import run
from reproductions.saddle_free_newton.metrics import negative_curvature_ratio
from reproductions.saddle_free_newton.model import TanhMLP
from reproductions.saddle_free_newton.step import KrylovNewtonStep, lanczos, subspace_directions


def symmetric(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    return (a + a.T) / 2


def test_full_lanczos_recovers_every_eigenvalue():
    a = symmetric(7)
    start = torch.arange(1.0, 8.0, dtype=torch.float64)
    V, T = lanczos(lambda v: a @ v, start, 7)
    assert torch.allclose(V @ V.T, torch.eye(7, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(T, V @ a @ V.T, atol=1e-10)
    assert torch.allclose(torch.diag(T, 2), torch.zeros(5, dtype=torch.float64), atol=1e-12)  # tridiagonal
    assert torch.allclose(torch.linalg.eigvalsh(T), torch.linalg.eigvalsh(a), atol=1e-10)
    assert torch.allclose(V[0], start / start.norm())


def test_partial_lanczos_ritz_values_lie_inside_the_spectrum():
    a = symmetric(12, seed=1)
    V, T = lanczos(lambda v: a @ v, torch.ones(12, dtype=torch.float64), 4)
    eig, ritz = torch.linalg.eigvalsh(a), torch.linalg.eigvalsh(T)
    assert V.shape == (4, 12)
    assert eig[0] - 1e-12 <= ritz[0] and ritz[-1] <= eig[-1] + 1e-12


def test_lanczos_stops_at_an_invariant_subspace():
    """diag(1, 2, 3, 4) from e1 + e2: the Krylov subspace is span{e1, e2}, so only 2 vectors and Ritz values 1, 2."""
    a = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    V, T = lanczos(lambda v: a @ v, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), 4)
    assert V.shape == (2, 4)
    assert torch.allclose(torch.linalg.eigvalsh(T), torch.tensor([1.0, 2.0], dtype=torch.float64))


class Saddle(nn.Module):
    """f(x, y) = x^2 - y^2 as a 'model' whose output is the loss (the backend's loss sums it)."""

    def __init__(self, x: float, y: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([x, y], dtype=torch.float64))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return (self.theta[0] ** 2 - self.theta[1] ** 2).reshape(1, 1)


def saddle_step(method: str, damping, start=(1.0, 0.5), lr: float = 1.0) -> list[float]:
    model = Saddle(*start)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    step = KrylovNewtonStep(optimizer, method=method, krylov_dim=2, damping=damping)
    backend = LocalBackend(model, loss_fn=lambda logits, targets: logits.sum())
    batch = (torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))
    step.training_step(backend, batch, epoch=0)
    return model.theta.detach().tolist(), step.last_stats


def test_sfn_leaves_the_saddle_along_negative_curvature_and_newton_jumps_onto_it():
    """At (1, 0.5): g = (2, -1), H = diag(2, -2). SFN: -|H|^{-1} g = (-1, +0.5) -> (0, 1), f = -1 (downhill along y).
    Newton: -H^{-1} g = (-1, -0.5) -> (0, 0), the saddle itself."""
    theta, stats = saddle_step("sfn", 0.0)
    assert theta == pytest.approx([0.0, 1.0], abs=1e-12)
    assert stats["min_ritz"] == pytest.approx(-2.0) and stats["max_ritz"] == pytest.approx(2.0)
    assert stats["negative_ritz"] == 1.0 and stats["grad_norm"] == pytest.approx(math.sqrt(5.0))
    theta, _ = saddle_step("damped_newton", 0.0)
    assert theta == pytest.approx([0.0, 0.0], abs=1e-12)


def test_damping_by_hand():
    """Damping 1: SFN divides by |h| + 1 = 3 on both axes: (1, 0.5) - (2/3, -1/3) = (1/3, 5/6).
    Damped Newton divides by h + 1: x by 3, y by -1: (1, 0.5) - (2/3, 1) = (1/3, -0.5)."""
    theta, _ = saddle_step("sfn", 1.0)
    assert theta == pytest.approx([1.0 / 3.0, 5.0 / 6.0], abs=1e-12)
    theta, _ = saddle_step("damped_newton", 1.0)
    assert theta == pytest.approx([1.0 / 3.0, -0.5], abs=1e-12)


def test_learning_rate_scales_the_step():
    theta, _ = saddle_step("sfn", 0.0, lr=0.5)
    assert theta == pytest.approx([0.5, 0.75], abs=1e-12)


def test_line_search_takes_the_damping_with_the_lowest_loss():
    """Candidates 0 and 1 for SFN: f(0, 1) = -1 beats f(1/3, 5/6) = 1/9 - 25/36; for Newton f(0, 0) = 0 loses to
    f(1/3, -1/2) = 1/9 - 1/4."""
    theta, stats = saddle_step("sfn", [1.0, 0.0])
    assert theta == pytest.approx([0.0, 1.0], abs=1e-12) and stats["damping"] == 0.0
    theta, stats = saddle_step("damped_newton", [0.0, 1.0])
    assert theta == pytest.approx([1.0 / 3.0, -0.5], abs=1e-12) and stats["damping"] == 1.0


def test_singular_damped_curvature_is_skipped_by_the_line_search():
    """Newton with damping 2 makes h_y + 2 = 0: that candidate is not finite, so damping 1 is taken."""
    _, stats = saddle_step("damped_newton", [2.0, 1.0])
    assert stats["damping"] == 1.0


def test_subspace_direction_matches_dense_formula():
    a = symmetric(5, seed=3)
    g = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    (sfn,), ritz = subspace_directions(a, g, "sfn", [0.5])
    eig, U = torch.linalg.eigh(a)
    expected = -(U @ torch.diag(1.0 / (eig.abs() + 0.5)) @ U.T @ g)
    assert torch.allclose(sfn, expected) and torch.allclose(ritz, eig)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "newton"}, "optimizer.method: 'newton' is not one of sfn, damped_newton"),
        ({"damping": [-1.0]}, "optimizer.damping: [-1.0] is not one or more finite values >= 0"),
        ({"damping": []}, "optimizer.damping: [] is not one or more finite values >= 0"),
        ({"krylov_dim": 0}, "optimizer.krylov_dim: must be >= 1"),
    ],
)
def test_bad_knobs_say_what_is_allowed(kwargs, message):
    optimizer = torch.optim.SGD(Saddle(1.0, 0.5).parameters(), lr=1.0)
    with pytest.raises(ConfigError, match=re.escape(message)):
        KrylovNewtonStep(optimizer, **kwargs)


def test_momentum_is_refused():
    optimizer = torch.optim.SGD(Saddle(1.0, 0.5).parameters(), lr=1.0, momentum=0.9)
    with pytest.raises(ConfigError, match="optimizer.base.momentum=0"):
        KrylovNewtonStep(optimizer)


def test_bad_method_in_a_run_fails_with_one_line(make_cfg):
    with pytest.raises(
        ConfigError, match="optimizer.method: unknown value 'newton'; valid choices: 'sfn' or 'damped_newton'"
    ):
        run(make_cfg(["+repro=sfn_digits_smoke", "logger=csv", "optimizer.method=newton"]))


def test_tanh_mlp_init_scale():
    torch.manual_seed(0)
    net = TanhMLP(10, (1, 8, 8), hidden=[256], init_scale=0.03)
    assert net.linears[0].weight.std().item() == pytest.approx(0.03 / 8.0, rel=0.05)
    assert net.linears[0].bias.abs().max().item() == 0.0


def test_negative_curvature_ratio():
    assert negative_curvature_ratio([{"min_ritz": -2.0}, {"min_ritz": -0.5}]) == 0.25
    assert negative_curvature_ratio([{"min_ritz": -2.0}, {"min_ritz": 0.3}]) == 0.0
    assert negative_curvature_ratio([{"min_ritz": 1.0}]) is None


def test_smoke_preset_records_ritz_values_and_train_error(make_cfg):
    record = run(make_cfg(["+repro=sfn_digits_smoke", "logger=csv"]))
    assert record["status"] == "finished", record.get("error")
    final = record["metrics"]["final"]
    assert 0.0 <= final["train/full_error"] <= 100.0 and final["train/full_loss"] > 0
    assert final["sfn/min_ritz_min_run"] <= final["sfn/min_ritz"] <= final["sfn/max_ritz"]
    assert final["sfn/damping"] in (0.001, 0.01, 0.1, 1.0, 10.0)
    assert [row["epoch"] for row in record["history"] if "sfn/min_ritz" in row] == [0, 1, 2]


BAD_STEP_KNOBS = [
    (["+repro=sfn_digits_smoke", "optimizer.method=newton"], "optimizer.method: unknown value 'newton'"),
    (["+repro=sfn_digits_smoke", "optimizer.damping=[-1]"], "optimizer.damping[0]: must be >= 0, got -1"),
    (["+repro=sfn_digits_smoke", "optimizer.damping=[]"], "optimizer.damping: has 0 items, needs 1"),
    (["+repro=sfn_digits_smoke", "model.init_scale=0"], "model.init_scale: must be > 0, got 0"),  # the model's own
]


@pytest.mark.parametrize("overrides, words", BAD_STEP_KNOBS)
def test_bad_step_knobs_stop_the_config_check_in_one_line(overrides, words):
    """The step builder's own checks run in the config check (step_config), before the run has a folder."""
    error = str(config_check_error(overrides))
    assert words in error and "\n" not in error
