"""Pascanu et al. 2013 (reproductions/rnn_clipping): the temporal order and addition data, the tanh RNN's
initializations, the gradient-norm callback, train.grad_clip as the paper's norm clipping, the regulariser, and the
addition problem's squared-error success criterion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.rejected import stopped_before_any_work

from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.optim.standard import finish_step
from optrepro.train import run
from reproductions.rnn_clipping.addition import addition_sequences, load_addition, marker_ranges
from reproductions.rnn_clipping.grad_norm import global_grad_norm, norm_summary
from reproductions.rnn_clipping.regression import RegressionModule, SquaredError, squared_errors, within_tolerance
from reproductions.rnn_clipping.regularizer import recurrent_norm_omega
from reproductions.rnn_clipping.rnn import TanhRNN, sparse_recurrent
from reproductions.rnn_clipping.success import best_error, solved
from reproductions.rnn_clipping.temporal_order import load_temporal_order, temporal_order_sequences


def test_sequences_put_a_or_b_in_the_paper_windows_and_label_their_order():
    x, y = temporal_order_sequences(500, 50, np.random.default_rng(0))
    assert x.shape == (500, 50, 6) and x.dtype == np.uint8
    assert (x.sum(axis=2) == 1).all()  # one symbol per step
    symbols = x.argmax(axis=2)
    for seq, label in zip(symbols, y):
        relevant = np.flatnonzero(seq < 2)
        assert len(relevant) == 2
        assert 5 <= relevant[0] < 10 and 25 <= relevant[1] < 30  # [L/10, 2L/10) and [5L/10, 6L/10)
        assert label == seq[relevant[0]] + 2 * seq[relevant[1]]
    assert set(np.unique(y)) == {0, 1, 2, 3}


def test_loader_is_a_function_of_data_seed_and_refuses_short_sequences():
    cfg = {"length": 20, "n_train": 30, "n_test": 10, "data_seed": 3}
    a, b = load_temporal_order(cfg, "."), load_temporal_order(cfg, ".")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.num_classes == 4 and tuple(a.x_train.shape) == (30, 20, 6) and not a.is_image
    with pytest.raises(ConfigError, match="dataset.length=5"):
        load_temporal_order({**cfg, "length": 5}, ".")


def test_smart_tanh_recurrent_matrix_is_sparse_with_radius_095():
    torch.manual_seed(0)
    w = sparse_recurrent(50, 15, 0.95, 0.01)
    assert ((w != 0).sum(dim=1) == 15).all()
    assert torch.linalg.eigvals(w).abs().max().item() == pytest.approx(0.95, rel=1e-5)


def test_basic_tanh_weights_have_std_01_and_zero_bias():
    torch.manual_seed(0)
    net = TanhRNN("tanh_rnn", 4, (50, 6), units=200)
    assert net.rnn.weight_hh_l0.std().item() == pytest.approx(0.1, rel=0.02)
    assert not net.rnn.bias_ih_l0.requires_grad and net.rnn.bias_hh_l0.abs().sum() == 0
    assert net(torch.zeros(3, 50, 6)).shape == (3, 4)
    with pytest.raises(InvalidConfigError, match=r"^model\.init: unknown value 'sigmoid'; valid choices: "):
        TanhRNN("tanh_rnn", 4, (50, 6), init="sigmoid")


RNN_BAD_KNOBS = [
    ("model.units=0", "model.units: must be >= 1, got 0; set model.units to at least 1"),
    ("model.init=sigmoid", "model.init: unknown value 'sigmoid'; valid choices: basic_tanh, smart_tanh"),
    ("model.spectral_radius=-1", "model.spectral_radius: must be > 0, got -1; set model.spectral_radius above 0"),
    (
        "model.sparse_fan_in=60",
        "model.sparse_fan_in: 60 incoming weights per unit but only 50 units; set model.sparse_fan_in <= model.units",
    ),
]


@pytest.mark.parametrize("override, line", RNN_BAD_KNOBS)
def test_bad_model_knobs_stop_before_any_work(override, line, tmp_path):
    given = ["+repro=rnn_add_clip_cpu", override, "logger=csv"]
    assert stopped_before_any_work(given, tmp_path) == f"optrepro: error: {line}"


def test_grad_norm_and_summary_by_hand():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert global_grad_norm([a, b]) == 5.0
    b.grad = torch.tensor([math.nan])
    assert global_grad_norm([a, b]) == math.inf
    later = norm_summary([1.0, 9.0, 2.0, 4.0], run_max=20.0, first_median=2.5)
    assert later == {
        "train/grad_norm_max": 9.0,
        "train/grad_norm_median": 3.0,
        "train/grad_norm_max_run": 20.0,
        "train/grad_norm_first_median": 2.5,
        "train/grad_norm_log10_max_run": pytest.approx(math.log10(20.0)),
    }
    first = norm_summary([4.0, 1.0, 2.0], run_max=4.0, first_median=None)  # the first epoch sets the typical norm
    assert first["train/grad_norm_first_median"] == 2.0 and first["train/grad_norm_log10_max_run"] == pytest.approx(
        math.log10(4.0)
    )


def test_solved_is_under_one_percent_test_error():
    assert solved(0.99, 1.0) == 1.0
    assert solved(1.0, 1.0) == 0.0  # "under 1%": 100 errors of 10000 is not a success
    assert solved(math.nan, 1.0) == 0.0


class _Backend:
    grad_scaler = None

    def apply_update(self, step_fn):
        step_fn()


def test_grad_clip_is_the_papers_rescaling():
    """train.grad_clip (finish_step -> clip_grad_norm_): g <- threshold * g / ||g|| when ||g|| > threshold."""
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=1.0)
    p.grad = torch.tensor([30.0, 40.0])  # norm 50 > 1: rescaled to norm 1
    finish_step(_Backend(), opt, 1.0)
    assert p.detach().tolist() == pytest.approx([-0.6, -0.8], rel=1e-5)
    p.grad = torch.tensor([0.3, 0.4])  # norm 0.5 <= 1: untouched
    finish_step(_Backend(), opt, 1.0)
    assert p.detach().tolist() == pytest.approx([-0.9, -1.2], rel=1e-5)


def test_smoke_preset_records_grad_norms(make_cfg):
    record = run(make_cfg(["+repro=rnn_torder_clip_smoke", "logger=csv"]))
    assert record["status"] == "finished"
    final = record["metrics"]["final"]
    assert final["train/grad_norm_max_run"] >= final["train/grad_norm_median"] > 0
    assert final["test/solved"] == float(final["test/error"] < 1.0)


def test_step_by_step_forward_equals_nn_rnn_and_keeps_state_gradients():
    torch.manual_seed(0)
    net = TanhRNN("tanh_rnn", 4, (12, 6))
    with torch.no_grad():
        net.rnn.bias_hh_l0.normal_()  # a non-zero bias exercises the bias path too
    x = torch.randn(5, 12, 6)
    fast = net(x)
    net.keep_states = True
    stepwise = net(x)
    assert torch.allclose(fast, stepwise, atol=1e-6)
    stepwise.sum().backward()
    assert len(net.states) == 12 and all(h.grad is not None for h in net.states)


def test_omega_and_its_gradient_by_hand():
    """One unit: v = g (1 - h^2) w = 1 * 0.75 * 2 = 1.5, Omega = (1.5^2 - 1)^2 = 1.5625, dOmega/dw = 5.625; a sample
    with g = 0 is left out of both the mean of the terms and the count."""
    w = torch.tensor([[2.0]], requires_grad=True)
    h = torch.tensor([[0.5], [0.3]])
    g = torch.tensor([[1.0], [0.0]])
    omega = recurrent_norm_omega(w, [h], [g])
    assert omega.item() == pytest.approx(1.5625)
    (grad,) = torch.autograd.grad(omega, w)
    assert grad.item() == pytest.approx(5.625)


def test_regularizer_without_kept_states_says_what_to_set(make_cfg):
    with pytest.raises(ConfigError, match="model.keep_states=true"):
        run(
            make_cfg(
                [
                    "+repro=rnn_torder_clip_smoke",
                    "logger=csv",
                    "+callbacks.vanishing_reg._target_=reproductions.rnn_clipping.regularizer.RecurrentNormRegularizer",
                ]
            )
        )


# ---- the addition problem (Section 4.1.2; official addition.py and RNN.py 'lastLinear') ----


def test_addition_marker_windows_are_the_codes():
    """addition.py: p0 in [0, int(l*.1)), p1 in int(l*.1) + [0, int(l*.4)) (its own self-test uses length 25)."""
    assert marker_ranges(25) == ((0, 2), (2, 12))
    assert marker_ranges(100) == ((0, 10), (10, 50))
    assert marker_ranges(10) == ((0, 1), (1, 5))


def test_addition_sequences_mark_two_numbers_and_target_their_mean():
    x, y = addition_sequences(400, 50, np.random.default_rng(0))
    assert x.shape == (400, 50, 2) and x.dtype == np.float32 and y.shape == (400, 1) and y.dtype == np.float32
    assert set(np.unique(x[:, :, 0])) == {0.0, 1.0} and (x[:, :, 0].sum(axis=1) == 2).all()  # two markers each
    assert (x[:, :, 1] >= 0).all() and (x[:, :, 1] < 1).all()  # uniform numbers in [0, 1)
    for seq, target in zip(x, y[:, 0]):
        first, second = np.flatnonzero(seq[:, 0])
        assert 0 <= first < 5 and 5 <= second < 25  # [0, L/10) and [L/10, L/2)
        assert target == np.float32((seq[first, 1] + seq[second, 1]) / 2)
    firsts = np.array([np.flatnonzero(seq[:, 0])[0] for seq in x])
    assert set(firsts) == set(range(5))  # every position of the window is drawn


def test_addition_exact_targets_of_a_seeded_draw():
    """Length 10: the first marker can only be at step 0, the second in steps 1-4. Draw order: first markers, second
    markers, then the numbers (float32); the targets of this draw written out."""
    x, y = addition_sequences(3, 10, np.random.default_rng(123))
    rng = np.random.default_rng(123)
    first, second = rng.integers(0, 1, size=3), rng.integers(1, 5, size=3)
    numbers = rng.uniform(size=(3, 10)).astype(np.float32)
    assert first.tolist() == [0, 0, 0] and second.tolist() == [1, 3, 3]
    assert [np.flatnonzero(seq[:, 0]).tolist() for seq in x] == [[0, 1], [0, 3], [0, 3]]
    assert np.array_equal(x[:, :, 1], numbers)
    by_hand = [(numbers[i, 0] + numbers[i, second[i]]) / 2 for i in range(3)]
    assert y[:, 0].tolist() == by_hand
    assert y[:, 0].tolist() == pytest.approx([0.2023658, 0.7270909, 0.2563419], abs=1e-7)


def test_addition_loader_is_a_function_of_data_seed_and_refuses_short_sequences():
    cfg = {"length": 20, "n_train": 30, "n_test": 10, "data_seed": 3}
    a, b = load_addition(cfg, "."), load_addition(cfg, ".")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.num_classes == 1 and tuple(a.x_train.shape) == (30, 20, 2) and tuple(a.y_train.shape) == (30, 1)
    with pytest.raises(ConfigError, match="dataset.length=9"):
        load_addition({**cfg, "length": 9}, ".")


def test_addition_success_is_squared_error_at_most_004_and_under_one_percent():
    """RNN.py: a sequence is misclassified when ((t - y)**2).sum(axis=1) > .04; the run is solved under 1% of them."""
    targets = torch.tensor([[0.5], [0.5], [0.5], [0.2]])
    outputs = torch.tensor(
        [[0.5], [0.699], [0.701], [0.0]]
    )  # squared errors 0, 0.0396, 0.0404, 0.04 (float32: 0.04000000357)
    assert squared_errors(outputs, targets).tolist() == pytest.approx([0.0, 0.199**2, 0.201**2, 0.04], rel=1e-4)
    assert within_tolerance(outputs[:3], targets[:3]).tolist() == [True, True, False]
    assert SquaredError()(outputs, targets).item() == pytest.approx((0.199**2 + 0.201**2 + 0.04) / 4, rel=1e-4)
    with pytest.raises(ValueError, match="differ in shape"):
        squared_errors(outputs[:, 0], targets)
    with pytest.raises(ConfigError, match="label_smoothing"):
        SquaredError(label_smoothing=0.1)
    assert solved(0.99, 1.0) == 1.0 and solved(1.0, 1.0) == 0.0


def test_best_error_is_the_lowest_finite_check():
    """test/error_best: the paper stops at its first solved check; a later NaN or worse check does not undo it."""
    assert best_error([36.5, 0.0, 1.75]) == 0.0
    assert best_error([31.9, math.nan, 100.0]) == 31.9
    assert math.isnan(best_error([math.nan])) and solved(best_error([]), 1.0) == 0.0


def test_regression_module_sums_squared_errors_and_sequences_within_tolerance():
    class LastNumber(torch.nn.Module):  # predicts the last step's number
        def forward(self, x):
            return x[:, -1, 1:2]

    module = RegressionModule(LastNumber(), None, None, loss_fn=SquaredError())
    module.on_validation_epoch_start()
    x = torch.zeros(3, 4, 2)
    x[:, -1, 1] = torch.tensor([0.5, 0.9, 0.1])
    module.validation_step((x, torch.tensor([[0.5], [0.5], [0.2]]), None), 0)
    loss_sum, correct, count = module._eval_sums.tolist()
    assert loss_sum == pytest.approx(0.0 + 0.16 + 0.01, rel=1e-5) and (correct, count) == (2.0, 3.0)


def test_addition_smoke_runs_record_the_papers_error_and_mse(make_cfg):
    for preset in ("rnn_add_sgd_smoke", "rnn_add_clipreg_smoke"):
        record = run(make_cfg([f"+repro={preset}", "logger=csv"]))
        assert record["status"] == "finished", record["error"]
        final = record["metrics"]["final"]
        assert final["test/solved"] == float(final["test/error"] < 1.0)
        assert final["test/acc"] == pytest.approx(1 - final["test/error"] / 100)
        assert final["test/error_best"] <= final["test/error"] and final["test/solved_best"] == float(
            final["test/error_best"] < 1.0
        )
        assert 0 < final["test/loss"] < 1 and final["train/grad_norm_max_run"] > 0
    assert "train/omega" in final
