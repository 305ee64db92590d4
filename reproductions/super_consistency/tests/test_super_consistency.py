"""Super consistency (reproductions/super_consistency): muP / NTP / SP scales against the formulas, the width-scaled
SGD step, lambda_max of known quadratics and of a small network against its dense Hessian, knob errors, a smoke run."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from helpers.rejected import rejected_run
from omegaconf import OmegaConf

from optrepro.errors import ConfigError, InvalidConfigError
from optrepro.train import run
from reproductions.super_consistency.models import ScaledConvNet, ScaledMLP
from reproductions.super_consistency.parametrisation import layer_scale, lr_multiplier
from reproductions.super_consistency.sharpness import SharpnessCallback, power_iteration
from reproductions.super_consistency.step import build_scaled_sgd_step


@pytest.mark.parametrize(
    "parametrisation, role, fan_in, std, multiplier",
    [
        ("mup", "input", 784, 1.0, 1 / 28),  # 1/sqrt(784)
        ("mup", "hidden", 64, 1.0, 1 / 8),
        ("mup", "readout", 64, 1.0, 1 / 64),  # 1/(sqrt(N) gamma), gamma = sqrt(N)
        ("ntp", "readout", 64, 1.0, 1 / 8),  # gamma = 1
        ("ntp", "hidden", 9 * 64, 1.0, 1 / 24),  # conv2 of the SimpleConvNet at N = 64: 1/sqrt(9N)
        ("sp", "hidden", 64, 1 / 8, 1.0),  # PyTorch's N(0, 1/fan_in), no multiplier
        ("sp", "readout", 256, 1 / 16, 1.0),
    ],
)
def test_layer_scales_follow_the_formulas(parametrisation, role, fan_in, std, multiplier):
    scale = layer_scale(parametrisation, role, fan_in)
    assert scale.init_std == pytest.approx(std) and scale.multiplier == pytest.approx(multiplier)


def test_lr_multiplier_is_the_width_under_mup_only():
    assert lr_multiplier("mup", 64) == 64.0
    assert lr_multiplier("ntp", 64) == 1.0 and lr_multiplier("sp", 64) == 1.0


def test_mlp_stores_raw_weights_and_scales_them_in_the_forward_pass():
    torch.manual_seed(0)
    net = ScaledMLP(10, (1, 16, 16), width=512, depth=2, parametrisation="mup")
    assert [layer.weight.std().item() for layer in (*net.hidden, net.readout)] == pytest.approx([1.0] * 3, abs=0.01)
    x = torch.randn(5, 1, 16, 16)
    h = F.relu(x.flatten(1) @ net.hidden[0].weight.T / 16)
    h = F.relu(h @ net.hidden[1].weight.T / math.sqrt(512))
    assert torch.allclose(net(x), h @ net.readout.weight.T / 512, atol=1e-5)
    assert net.lr_multiplier == 512.0 and net.width == 512
    sp = ScaledMLP(10, (64,), width=256, depth=1, parametrisation="sp")
    assert sp.hidden[0].weight.std().item() == pytest.approx(1 / 8, rel=0.02)
    assert sp.readout.weight.std().item() == pytest.approx(1 / 16, rel=0.05) and sp.lr_multiplier == 1.0


def test_mup_output_shrinks_like_one_over_sqrt_width_and_ntp_output_does_not():
    """Readout 1/N (muP) against 1/sqrt(N) (NTP) on O(1) features: at init the muP logits' RMS is ~1/sqrt(N)
    (500 outputs, so the RMS averages over many readout rows)."""
    torch.manual_seed(0)
    x = torch.randn(64, 64)
    stds = {
        (p, n): ScaledMLP(500, (64,), n, 2, p)(x).pow(2).mean().sqrt().item()
        for p in ("mup", "ntp")
        for n in (64, 1024)
    }
    assert stds[("mup", 64)] / stds[("mup", 1024)] == pytest.approx(4.0, rel=0.2)
    assert stds[("ntp", 64)] / stds[("ntp", 1024)] == pytest.approx(1.0, rel=0.2)


def test_convnet_reads_out_n_features_on_28_and_32_pixel_images():
    for shape in ((1, 28, 28), (3, 32, 32)):
        net = ScaledConvNet(10, shape, width=8, parametrisation="ntp")
        assert net(torch.zeros(2, *shape)).shape == (2, 10)
        assert net.conv2.multiplier == pytest.approx(1 / math.sqrt(72))


def test_step_scales_the_lr_by_the_width_and_the_update_is_eta0_n_times_the_gradient():
    torch.manual_seed(0)
    net = ScaledMLP(3, (4,), width=32, depth=1, parametrisation="mup")
    cfg = OmegaConf.create(
        {
            "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5, "momentum": 0.0, "weight_decay": 0.0},
            "weight_decay_mode": "coupled",
        }
    )
    optimizer, _ = build_scaled_sgd_step(cfg, net, num_train_samples=8, num_classes=3, accumulate=1, grad_clip=None)
    assert [group["lr"] for group in optimizer.param_groups] == [16.0] * len(optimizer.param_groups)
    before = net.readout.weight.detach().clone()
    F.cross_entropy(net(torch.randn(8, 4)), torch.arange(8) % 3).backward()
    grad = net.readout.weight.grad.clone()
    optimizer.step()
    assert torch.allclose(net.readout.weight, before - 16.0 * grad)


def test_step_refuses_a_model_without_an_lr_multiplier():
    cfg = OmegaConf.create({"base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5}})
    with pytest.raises(InvalidConfigError, match="optimizer.step: Linear has no lr_multiplier; use model=scaled_mlp"):
        build_scaled_sgd_step(
            cfg, torch.nn.Linear(2, 2), num_train_samples=1, num_classes=2, accumulate=1, grad_clip=None
        )


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic():
    """f = x^T H x / 2, H = diag(100, 1): Hv for v = (10, 1) is (1000, 1); the top eigenvalue 100 within 1e-3."""
    h = torch.tensor([100.0, 1.0], dtype=torch.float64)
    assert (h * torch.tensor([10.0, 1.0], dtype=torch.float64)).tolist() == [1000.0, 1.0]
    eigenvalue, (vector,) = power_iteration(lambda v: [h * v[0]], [torch.tensor([0.3, 0.9], dtype=torch.float64)], 10)
    assert eigenvalue == pytest.approx(100.0, rel=1e-3)
    assert abs(vector[0].item()) == pytest.approx(1.0, abs=1e-6)


def fake_trainer(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float):
    data = SimpleNamespace(to_input=lambda raw: raw, x_train=x, y_train=y)
    optimizer = SimpleNamespace(param_groups=[{"lr": lr}])
    return SimpleNamespace(datamodule=data, optimizers=[optimizer]), SimpleNamespace(net=net)


def test_callback_lambda_max_matches_the_dense_hessian_and_is_scaled_by_the_width():
    """A width-4 muP MLP on 16 fixed samples: the callback's lambda_max is the top eigenvalue of the cross-entropy
    Hessian built densely by torch.autograd.functional.hessian; scaled = 4 lambda_max; edge ratio = lambda lr / 2."""
    torch.manual_seed(1)
    net = ScaledMLP(3, (2,), width=4, depth=1, parametrisation="mup").double()
    x, y = torch.randn(16, 2, dtype=torch.float64), torch.arange(16) % 3
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])

    def loss_of(theta):
        w0, w1 = theta[:8].reshape(shapes[0]), theta[8:].reshape(shapes[1])
        return F.cross_entropy(F.linear(F.relu(F.linear(x, w0 / math.sqrt(2))), w1 / 4), y)

    dense = torch.autograd.functional.hessian(loss_of, flat)
    top = torch.linalg.eigvalsh(dense).abs().max().item()
    trainer, module = fake_trainer(net, x, y, lr=2.0)
    values = SharpnessCallback(batch_size=16, iterations=200).measure(trainer, module)
    assert values["sharpness/lambda_max"] == pytest.approx(top, rel=1e-4)
    assert values["sharpness/scaled"] == pytest.approx(4 * top, rel=1e-4)
    assert values["sharpness/edge_ratio"] == pytest.approx(top * 2.0 / 2, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"iterations": 2.5}, "iterations"),
        ({"every_n_epochs": -1}, "every_n_epochs"),
    ],
)
def test_bad_sharpness_knobs_stop_with_the_key(kwargs, key):
    message = f"callbacks.sharpness.{key}: .*; (set|give) "
    with pytest.raises(InvalidConfigError, match=message):
        SharpnessCallback(**kwargs)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.parametrisation=xp", "model.parametrisation: unknown value 'xp'; valid choices: mup, ntp, sp"),
        ("model.width=0", "model.width: must be >= 1, got 0; set model.width to at least 1"),
        ("model.depth=0", "model.depth: must be >= 1, got 0; set model.depth to at least 1"),
        (
            "callbacks.sharpness.iterations=0",
            "callbacks.sharpness.iterations: must be >= 1, got 0; set callbacks.sharpness.iterations to at least 1",
        ),
    ],
)
def test_bad_model_knobs_fail_before_training(make_cfg, tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        run(make_cfg(["+repro=sc_smoke", "logger=csv", override]))
    assert str(err.value) == message
    assert not (tmp_path / "runs").exists()


def test_run_py_prints_one_error_line_and_exits_2(tmp_path):
    stderr = rejected_run(["+repro=sc_smoke", "model.parametrisation=standard"], tmp_path)
    assert stderr.strip().splitlines()[-1] == (
        "optrepro: error: model.parametrisation: unknown value 'standard'; valid choices: mup, ntp, sp"
    )


def test_smoke_run_records_the_sharpness_trajectory(make_cfg, tmp_path):
    record = run(make_cfg(["+repro=sc_smoke", "logger=csv"]))
    final, history = record["metrics"]["final"], record["history"]
    assert record["status"] == "finished" and len(history) == 2
    assert all("sharpness/scaled" in row for row in history)
    assert final["sharpness/scaled"] == pytest.approx(16 * final["sharpness/lambda_max"])
    mean = (history[0]["sharpness/scaled"] + final["sharpness/scaled"]) / 2
    assert final["sharpness/scaled_mean"] == pytest.approx(mean)
    assert final["sharpness/scaled_init"] > 0 and final["lr"] == pytest.approx(16 * 0.5)
    assert json.loads(json.dumps(final)) == final
