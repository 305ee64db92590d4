"""SAM and the edge of stability (reproductions/sam_eos): the SAM-edge against its closed form and the stability
condition it solves, SAM's step on a quadratic against the per-eigendirection factor the edge comes from, lambda_max
and SE of a quadratic with known H and g, the squared loss by hand, the late-window summaries, knob errors, a smoke
run and the plot script on its record."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.rejected import rejected_run

from optrepro.errors import InvalidConfigError
from optrepro.landscape.hessian import hessian_vector_product
from optrepro.optim.sam import SAM
from optrepro.train import run
from reproductions.sam_eos import plot
from reproductions.sam_eos.callback import EdgeOfStabilityCallback, measure_edge
from reproductions.sam_eos.edge import sam_edge
from reproductions.sam_eos.loss import SquaredOneHot
from reproductions.sam_eos.power import top_eigenpair

# (eta, rho, ||g||, SE): worked out by hand from the formula (reference notes, [derived]); each solves
# eta lam + eta rho lam^2 / ||g|| = 2.
TABLE = [(0.1, 0.1, 1.0, 10.000), (0.01, 0.1, 0.1, 13.651), (0.01, 0.1, 0.01, 4.4224), (0.01, 0.05, 1.0, 54.031)]


@pytest.mark.parametrize(("lr", "rho", "grad_norm", "expected"), TABLE)
def test_sam_edge_matches_the_hand_table_and_solves_the_stability_condition(lr, rho, grad_norm, expected):
    edge = sam_edge(lr, rho, grad_norm)
    assert edge == pytest.approx(expected, rel=1e-4)
    assert lr * edge + lr * rho * edge**2 / grad_norm == pytest.approx(2.0, rel=1e-12)
    assert edge < 2.0 / lr


def test_sam_edge_limits():
    assert sam_edge(0.5, 0.0, 3.0) == 4.0  # GD's edge
    assert sam_edge(0.5, 1e-9, 3.0) == pytest.approx(4.0, rel=1e-8)  # rho -> 0
    assert sam_edge(0.5, 0.1, 0.0) == 0.0
    small = 1e-8  # ||g|| -> 0: SE ~ sqrt(2 ||g|| / (eta rho))
    assert sam_edge(0.5, 0.1, small) == pytest.approx(math.sqrt(2 * small / 0.05), rel=1e-3)
    assert sam_edge(0.1, 0.1, 0.5) < sam_edge(0.1, 0.1, 1.0)  # the edge falls with the gradient norm
    with pytest.raises(ValueError, match="learning rate > 0"):
        sam_edge(0.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="rho >= 0"):
        sam_edge(0.1, -0.1, 1.0)


def test_one_sam_step_on_a_quadratic_scales_each_eigendirection_by_the_factor_behind_the_edge():
    """f = w^T H w / 2, H = diag(lam): w_i <- w_i (1 - eta lam_i - eta rho lam_i^2 / ||g||), with the product's SAM."""
    lam = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    w0 = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    lr, rho = 0.1, 0.05
    w = torch.nn.Parameter(w0.clone())
    optimizer = SAM([w], lambda params: torch.optim.SGD(params, lr=lr), rho=rho)
    w.grad = lam * w.detach()
    grad_norm = float(w.grad.norm())
    optimizer.perturb()
    w.grad = lam * w.detach()  # the gradient at w + rho g / ||g||
    optimizer.step()
    factor = 1 - lr * lam - lr * rho * lam**2 / grad_norm
    torch.testing.assert_close(w.detach(), w0 * factor, rtol=1e-12, atol=1e-12)
    edge = sam_edge(lr, rho, grad_norm)  # at lam = SE the factor is exactly -1: the edge of stability
    assert 1 - lr * edge - lr * rho * edge**2 / grad_norm == pytest.approx(-1.0, abs=1e-12)


def quadratic(h: torch.Tensor, b: torch.Tensor, w: torch.nn.Parameter):
    return lambda: 0.5 * w @ h @ w - b @ w


def test_hessian_vector_product_and_power_iteration_on_a_known_hessian():
    h = torch.diag(torch.tensor([100.0, 1.0], dtype=torch.float64))
    w = torch.nn.Parameter(torch.tensor([0.1, 1.0], dtype=torch.float64))
    loss = quadratic(h, torch.zeros(2, dtype=torch.float64), w)
    (hv,) = hessian_vector_product(loss, [w], [torch.tensor([10.0, 1.0], dtype=torch.float64)])
    torch.testing.assert_close(hv, torch.tensor([1000.0, 1.0], dtype=torch.float64))
    start = [torch.tensor([0.3, 0.9], dtype=torch.float64)]
    pair = top_eigenpair(loss, [w], start, iterations=100, tolerance=1e-6)
    assert pair.converged and pair.iterations < 100
    assert pair.eigenvalue == pytest.approx(100.0, rel=1e-3)
    warm = top_eigenpair(loss, [w], pair.vector, iterations=100, tolerance=1e-6)
    assert warm.iterations == 2 and warm.eigenvalue == pytest.approx(100.0, rel=1e-9)


def test_measure_edge_on_a_quadratic_with_known_hessian_and_gradient():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    eigenvalues = torch.tensor([3.0, 1.5, 0.5, -0.2], dtype=torch.float64)
    h = q @ torch.diag(eigenvalues) @ q.T
    b = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.tensor([0.2, 0.1, -0.3, 0.4], dtype=torch.float64))
    grad_norm = float((h @ w.detach() - b).norm())
    lr, rho = 0.2, 0.05
    start = [torch.ones(4, dtype=torch.float64)]
    values, vector = measure_edge(quadratic(h, b, w), [w], lr, rho, start, iterations=200, tolerance=1e-10)
    expected_edge = grad_norm / (2 * rho) * (math.sqrt(1 + 8 * rho / (lr * grad_norm)) - 1)
    assert values["eos/grad_norm"] == pytest.approx(grad_norm, rel=1e-12)
    assert values["eos/sam_edge"] == pytest.approx(expected_edge, rel=1e-12)
    assert values["eos/two_over_lr"] == pytest.approx(10.0)
    assert values["eos/lambda_max"] == pytest.approx(3.0, rel=1e-6)
    assert values["eos/lambda_over_edge"] == pytest.approx(3.0 / expected_edge, rel=1e-6)
    assert values["eos/lambda_over_two_over_lr"] == pytest.approx(3.0 * lr / 2, rel=1e-6)
    assert abs(float(vector[0] @ q[:, 0])) == pytest.approx(1.0, abs=1e-6)
    plain, none = measure_edge(quadratic(h, b, w), [w], lr, 0.0, None)
    assert none is None and "eos/lambda_max" not in plain and plain["eos/sam_edge"] == pytest.approx(10.0)


def test_squared_one_hot_loss_by_hand():
    outputs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    # errors: (0, 0) and (0.5, -0.5) -> squares 0, 0, 0.25, 0.25 -> mean over 4 entries
    assert float(SquaredOneHot()(outputs, torch.tensor([0, 1]))) == pytest.approx(0.125)
    with pytest.raises(InvalidConfigError, match=r"^train\.label_smoothing: 0\.1 .*; set train\.label_smoothing=0$"):
        SquaredOneHot(label_smoothing=0.1)


def test_late_window_summaries_by_hand():
    callback = EdgeOfStabilityCallback(hessian_every=5, late_fraction=0.5)
    callback._measured = [
        {"epoch": e, "ratio": r, "gd_ratio": g, "edge_ratio": 0.5}
        for e, r, g in [(4, 2.0, 3.0), (9, 1.0, 0.4), (14, 0.8, 0.6), (19, 1.2, 0.8)]
    ]
    out = callback.summaries(max_epochs=20)  # late: steps 10..20, i.e. epochs 9, 14, 19
    assert out["eos/late_measurements"] == 3
    assert out["eos/late_lambda_over_edge"] == pytest.approx(1.0)
    assert out["eos/late_lambda_over_two_over_lr"] == pytest.approx(0.6)
    assert out["eos/late_edge_over_two_over_lr"] == pytest.approx(0.5)
    assert out["eos/peak_lambda_over_two_over_lr"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (
            {"hessian_every": 0},
            "callbacks.edge_of_stability.hessian_every: must be >= 1, got 0; "
            "set callbacks.edge_of_stability.hessian_every to at least 1",
        ),
        (
            {"edge_every": 2, "hessian_every": 5},
            "callbacks.edge_of_stability.hessian_every: 5 is not a multiple of edge_every 2; "
            "lambda_max is compared with the SE of the same epoch",
        ),
        (
            {"late_fraction": 1.5},
            "callbacks.edge_of_stability.late_fraction: must be <= 1, got 1.5; "
            "set callbacks.edge_of_stability.late_fraction to at most 1",
        ),
        (
            {"tolerance": 0},
            "callbacks.edge_of_stability.tolerance: must be > 0, got 0; "
            "set callbacks.edge_of_stability.tolerance above 0",
        ),
        (
            {"samples": 2.5},
            "callbacks.edge_of_stability.samples: 2.5 is not a whole number; "
            "give an integer, e.g. callbacks.edge_of_stability.samples=1",
        ),
    ],
)
def test_bad_callback_knobs_are_one_line_errors(knobs, message):
    with pytest.raises(InvalidConfigError) as raised:
        EdgeOfStabilityCallback(**knobs)
    assert str(raised.value) == message


def test_bad_knob_on_the_command_line_exits_2_with_one_line(tmp_path):
    N = "callbacks.edge_of_stability"  # noqa: N806
    stderr = rejected_run(["+repro=eos_digits_smoke", "logger=csv", f"{N}.power_iterations=0"], tmp_path)
    assert stderr.strip().splitlines()[-1] == (
        f"optrepro: error: {N}.power_iterations: must be >= 1, got 0; set {N}.power_iterations to at least 1"
    )


def test_smoke_preset_records_the_edge_and_the_plot_reads_it(make_cfg, tmp_path):
    record = run(make_cfg(["+repro=eos_digits_smoke", "logger=csv"]))
    assert record["status"] == "finished", record["error"]
    rows = [row for row in record["history"] if "eos/sam_edge" in row]
    assert len(rows) == 10  # SE after every full-batch step
    measured = [row for row in rows if "eos/lambda_max" in row]
    assert [row["epoch"] for row in measured] == [4, 9]
    for row in measured:
        assert row["eos/lambda_over_edge"] == pytest.approx(row["eos/lambda_max"] / row["eos/sam_edge"])
        assert row["eos/sam_edge"] == pytest.approx(sam_edge(1.0, 0.1, row["eos/grad_norm"]))
    final = record["metrics"]["final"]
    assert final["eos/late_measurements"] == 2 and final["eos/lambda_max"] > 0
    out = tmp_path / "edges.png"
    assert plot.main([str(tmp_path), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
