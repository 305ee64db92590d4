"""Gradient Starvation (Pezeshki et al. 2021): Spectral Decoupling loss, the separable two moons, the margin
callback."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optrepro import builders
from optrepro.config import semantic_config
from optrepro.data.registry import load_splits
from optrepro.data.two_moons_data import load_two_moons, two_moons_points
from optrepro.train import run
from reproductions.gradient_starvation.losses import SpectralDecoupling, spectral_decoupling_loss
from reproductions.gradient_starvation.two_moons_margin import (
    SHIFT_ACC_KEY,
    TEST_MARGIN_KEY,
    TRAIN_MARGIN_KEY,
    easy_direction,
    two_moons_margin_metrics,
)


# ---- Spectral Decoupling ------------------------------------------------------------------------------------
def test_spectral_decoupling_equals_the_hand_computation():
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    lam = 0.3

    def ce(row, t):
        return -row[t] + math.log(sum(math.exp(v) for v in row))

    rows = logits.tolist()
    expected = sum(ce(r, t) + lam / 2 * sum(v * v for v in r) for r, t in zip(rows, targets.tolist())) / 2
    got = spectral_decoupling_loss(logits, targets, lam)
    assert got.dtype == torch.float64 and got.item() == pytest.approx(expected, rel=1e-12)
    built = SpectralDecoupling(lam)(logits, targets)
    assert built.item() == pytest.approx(expected, rel=1e-12)


def test_spectral_decoupling_with_zero_lambda_is_cross_entropy():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 4, (6,))
    assert SpectralDecoupling(0.0)(logits, targets).item() == pytest.approx(
        F.cross_entropy(logits, targets).item(), rel=1e-14
    )


def test_spectral_decoupling_gradient_adds_lambda_times_logits():
    logits = torch.tensor([[2.0, -1.0]], dtype=torch.float64, requires_grad=True)
    spectral_decoupling_loss(logits, torch.tensor([0]), 0.5).backward()
    ce_grad = torch.softmax(logits.detach(), -1) - torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(logits.grad, ce_grad + 0.5 * logits.detach())


def test_the_default_loss_is_cross_entropy_and_the_loss_option_selects_sd(make_cfg):
    cfg = make_cfg([])
    assert semantic_config(cfg)["loss"] == {"_target_": "optrepro.losses.CrossEntropy"} and not cfg.callbacks
    logits, targets = torch.tensor([[1.0, 2.0]]), torch.tensor([1])
    assert builders.build_train_loss(cfg)(logits, targets).item() == F.cross_entropy(logits, targets).item()
    sd = make_cfg(["loss=spectral_decoupling", "loss.sd_lambda=0.2"])
    assert semantic_config(sd)["loss"]["sd_lambda"] == 0.2
    logits, targets = torch.tensor([[1.0, 2.0]]), torch.tensor([1])
    assert builders.build_train_loss(sd)(logits, targets).item() == pytest.approx(
        F.cross_entropy(logits, targets).item() + 0.1 * 5.0, rel=1e-6
    )


# ---- two moons ----------------------------------------------------------------------------------------------
def test_two_moons_shape_labels_separation_and_determinism(make_cfg):
    cfg = make_cfg(["dataset=two_moons"])
    a = load_splits(cfg.dataset, "unused")
    b = load_two_moons(cfg.dataset, "unused")
    assert a.x_train.shape == (300, 2) and a.x_test.shape == (300, 2) and a.x_train.dtype == torch.float32
    assert a.num_classes == 2 and set(a.y_train.tolist()) == {0, 1} and a.y_train.dtype == torch.int64
    assert a.y_train.sum().item() == 150  # make_moons: half of each class
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, a.x_test)  # test set from its own seed
    # Delta = +0.1: class 1 at feature 0 <= -0.1, class 0 at >= +0.1 (the linearly separating coordinate)
    assert a.x_train[a.y_train == 1, 0].max() <= -0.1 + 1e-6 and a.x_train[a.y_train == 0, 0].min() >= 0.1 - 1e-6
    assert a.mean == (0.0, 0.0) and a.std == (1.0, 1.0)


def test_two_moons_margin_sign_and_seed():
    x, y = two_moons_points(50, 0.1, -0.1, 3)
    assert (x[y == 1, 0] > 0).any() or (x[y == 0, 0] < 0).any()  # negative Delta: the classes overlap on feature 0
    x2, _ = two_moons_points(50, 0.1, -0.1, 4)
    assert not (x == x2).all()


# ---- margin callback on a hand-made classifier ---------------------------------------------------------------
def linear_net() -> nn.Module:
    """logit_1 - logit_0 = -x_0: class 1 left of the line x_0 = 0, class 0 right of it."""
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.5, 0.0], [-0.5, 0.0]]))
        net.bias.zero_()
    return net


def test_margin_metrics_on_a_straight_boundary():
    x_train = torch.tensor([[-0.3, 0.0], [-1.0, 1.0], [0.4, -1.0], [1.2, 0.5]])
    y_train = torch.tensor([1, 1, 0, 0])
    x_test = torch.tensor([[-0.3, 0.2], [0.7, 0.0]])
    y_test = torch.tensor([1, 0])
    coord, toward = easy_direction(x_train, y_train)
    assert coord == 0 and toward.tolist() == [-1.0, 1.0]  # class 0 moves left, class 1 right
    m = two_moons_margin_metrics(linear_net(), x_train, y_train, x_test, y_test)
    step = 0.01  # grid resolution bound on this box
    assert m[TRAIN_MARGIN_KEY] == pytest.approx(0.3, abs=step)
    assert m[TEST_MARGIN_KEY] == pytest.approx(0.3, abs=step)
    # shift 0.5: (-0.3 -> 0.2) crosses the line, (0.7 -> 0.2) does not
    assert m[SHIFT_ACC_KEY] == pytest.approx(0.5)
    wrong = two_moons_margin_metrics(linear_net(), x_train, torch.tensor([1, 1, 0, 1]), x_test, y_test)
    assert wrong[TRAIN_MARGIN_KEY] == pytest.approx(-1.2, abs=step)  # a misclassified point counts negative


def test_margin_metrics_reject_non_2d_inputs():
    with pytest.raises(ValueError, match="2-D"):
        two_moons_margin_metrics(
            nn.Linear(3, 2), torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]), torch.zeros(2, 3), torch.tensor([0, 1])
        )


# ---- end to end ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, arm", [("gs_moons_ce_smoke", "ce"), ("gs_moons_sd_smoke", "sd")])
def test_gradient_starvation_presets_run_end_to_end(preset, arm, make_cfg):
    cfg = make_cfg([f"+repro={preset}", "logger=csv"])
    assert cfg.train.batch_size == 300 and list(cfg.model.hidden) == [500] and cfg.optimizer.base.lr == 0.01
    assert cfg.optimizer.base.weight_decay == 0.0 and cfg.dataset.name == "two_moons"
    assert cfg.loss._target_.rsplit(".", 1)[-1] == ("CrossEntropy" if arm == "ce" else "SpectralDecoupling")
    record = run(cfg)
    assert record["status"] == "finished", record.get("error")
    assert record["repro"] == {"paper": "gradient_starvation", "name": preset, "tier": "smoke", "arm": arm}
    assert len(record["history"]) == 20 and record["timing"]["steps"] == 20  # full batch: one step per epoch
    final = record["metrics"]["final"]
    for key in (TRAIN_MARGIN_KEY, TEST_MARGIN_KEY, SHIFT_ACC_KEY):
        assert key in final and math.isfinite(final[key])
    assert 0.0 <= final[SHIFT_ACC_KEY] <= 1.0
    json.dumps(record)
