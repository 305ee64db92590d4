"""Grokking at the Edge of Numerical Stability: StableMax, ⊥Grad, the modular-addition data, the bias-free MLP."""

from __future__ import annotations

import json
import math

import lightning.pytorch as pl
import pytest
import torch
from omegaconf import OmegaConf

from optrepro import builders
from optrepro.data.modular_data import load_modular
from optrepro.data.registry import load_splits
from optrepro.losses import CastLogits, CrossEntropy
from optrepro.models import mlp_model
from optrepro.optim.factory import build_optimizer
from optrepro.optim.orthogonal import OrthogonalGrad, orthogonalize_
from optrepro.train import run
from reproductions.grokking.losses import StableMaxCrossEntropy, stablemax, stablemax_cross_entropy, stablemax_s


def hand_s(x: float) -> float:
    return x + 1.0 if x >= 0 else 1.0 / (1.0 - x)


# ---- StableMax ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "logits",
    [
        [0.0, 0.0, 0.0],
        [1.0, -1.0, 2.0],
        [-3.0, 0.5, -0.25, 4.0],
        [100.0, -100.0],
    ],
)
def test_stablemax_matches_the_hand_computation(logits):
    s = [hand_s(v) for v in logits]
    expected = [v / sum(s) for v in s]
    got = stablemax(torch.tensor([logits], dtype=torch.float64))[0].tolist()
    assert got == pytest.approx(expected, rel=1e-12)
    assert stablemax_s(torch.tensor(logits, dtype=torch.float64)).tolist() == pytest.approx(s, rel=1e-12)


@pytest.mark.parametrize(
    "logits, target, expected",
    [
        # s = (2, 0.5, 3): p_2 = 3 / 5.5
        ([1.0, -1.0, 2.0], 2, -math.log(3.0 / 5.5)),
        # s = (1, 1): p = 1/2
        ([0.0, 0.0], 1, math.log(2.0)),
        # s = (0.25, 1.5, 1): p_0 = 0.25 / 2.75
        ([-3.0, 0.5, 0.0], 0, -math.log(0.25 / 2.75)),
    ],
)
def test_stablemax_cross_entropy_equals_the_hand_value(logits, target, expected):
    loss = stablemax_cross_entropy(torch.tensor([logits], dtype=torch.float64), torch.tensor([target]))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    built = CastLogits(StableMaxCrossEntropy(), "float64")(torch.tensor([logits]), torch.tensor([target]))
    assert built.dtype == torch.float64 and built.item() == pytest.approx(expected, rel=1e-6)


def test_stablemax_gradient_is_finite_for_large_logits():
    x = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.float64, requires_grad=True)
    stablemax_cross_entropy(x, torch.tensor([1])).backward()
    assert torch.isfinite(x.grad).all()


def test_cross_entropy_option_is_torch_cross_entropy_in_the_asked_dtype():
    logits, targets = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    loss = CastLogits(CrossEntropy(), "float64")(logits, targets)
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits.double(), targets).item())


# ---- ⊥Grad --------------------------------------------------------------------------------------------------
def test_orthogonal_sgd_update_has_no_component_along_the_weights():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(7, 5, dtype=torch.float64))
    w.grad = torch.randn(7, 5, dtype=torch.float64)
    before, grad_norm = w.detach().clone(), w.grad.norm().item()
    optimizer = OrthogonalGrad([w], lambda groups: torch.optim.SGD(groups, lr=0.1))
    optimizer.step()
    update = (w.detach() - before).reshape(-1)
    assert torch.dot(update, before.reshape(-1)).abs().item() < 1e-14 * update.norm().item() * before.norm().item()
    assert update.norm().item() == pytest.approx(0.1 * grad_norm, rel=1e-12)  # rescaled to the old norm


@pytest.mark.parametrize(
    "w, g, rescale, expected",
    [
        # w = (1, 0), g = (1, 1): g_perp = (0, 1), norm 1 -> rescaled to sqrt(2)
        ([1.0, 0.0], [1.0, 1.0], True, [0.0, math.sqrt(2.0)]),
        ([1.0, 0.0], [1.0, 1.0], False, [0.0, 1.0]),
        # w = (3, 4), g = (1, 0): w.g / w.w = 3/25, g_perp = (1 - 9/25, -12/25) = (16/25, -12/25), norm 4/5 -> 1
        ([3.0, 4.0], [1.0, 0.0], True, [0.8, -0.6]),
    ],
)
def test_orthogonal_gradient_hand_example(w, g, rescale, expected):
    param = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))
    param.grad = torch.tensor(g, dtype=torch.float64)
    orthogonalize_(param, rescale=rescale)
    assert param.grad.tolist() == pytest.approx(expected, abs=1e-14)
    # one SGD step of lr 0.5 on the hand example
    param.grad = torch.tensor(g, dtype=torch.float64)
    OrthogonalGrad([param], lambda groups: torch.optim.SGD(groups, lr=0.5), rescale=rescale).step()
    assert param.detach().tolist() == pytest.approx([wi - 0.5 * ei for wi, ei in zip(w, expected)], abs=1e-14)


def test_factory_wraps_adamw_in_orthogonal_grad_and_schedulers_see_the_base_groups():
    model = torch.nn.Linear(3, 2, bias=False)
    cfg = OmegaConf.create(
        {
            "name": "adamw",
            "step": "standard",
            "orthogonal_grad": True,
            "weight_decay_mode": "decoupled",
            "base": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.01, "eps": 1e-25, "weight_decay": 0.0},
        }
    )
    optimizer, _ = build_optimizer(cfg, model, num_train_samples=10, num_classes=2)
    assert isinstance(optimizer, OrthogonalGrad) and isinstance(optimizer.base_optimizer, torch.optim.AdamW)
    assert optimizer.param_groups is optimizer.base_optimizer.param_groups
    assert optimizer.param_groups[0]["eps"] == 1e-25
    plain, _ = build_optimizer(
        OmegaConf.merge(cfg, {"orthogonal_grad": False}), model, num_train_samples=10, num_classes=2
    )
    assert type(plain) is torch.optim.AdamW


# ---- data and model ------------------------------------------------------------------------------------------
DATA_CFG = {"name": "modular_addition", "modulus": 113, "train_fraction": 0.4, "split_seed": 42, "label_noise": 0.0}


@pytest.mark.parametrize("p, fraction", [(113, 0.4), (7, 0.5)])
def test_modular_addition_has_every_pair_with_correct_labels(p, fraction):
    splits = load_modular(OmegaConf.create({**DATA_CFG, "modulus": p, "train_fraction": fraction}), "unused")
    assert splits.num_train + len(splits.y_test) == p * p
    assert splits.num_train == int(fraction * p * p)
    x = torch.cat([splits.x_train, splits.x_test])
    y = torch.cat([splits.y_train, splits.y_test])
    assert x.shape == (p * p, 2 * p) and x.dtype == torch.float32
    assert (x.sum(1) == 2).all() and (x[:, :p].sum(1) == 1).all()
    a, b = x[:, :p].argmax(1), x[:, p:].argmax(1)
    assert torch.equal(y, (a + b) % p)
    pairs = set(zip(a.tolist(), b.tolist()))
    assert len(pairs) == p * p  # every pair once: train and test are disjoint
    assert splits.num_classes == p and set(splits.mean) == {0.0} and set(splits.std) == {1.0}


def test_modular_split_is_the_same_every_call_and_ignores_the_run_seed():
    first = load_splits(OmegaConf.create(DATA_CFG), "unused", seed=0)
    second = load_splits(OmegaConf.create(DATA_CFG), "unused", seed=7)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_test, second.y_test)
    other = load_modular(OmegaConf.create({**DATA_CFG, "split_seed": 1}), "unused")
    assert not torch.equal(first.x_train, other.x_train)


def test_grokking_mlp_has_no_biases_and_the_default_mlp_is_unchanged():
    net = mlp_model("mlp", 113, (226,), hidden=[200, 200], bias=False)
    names = [n for n, _ in net.named_parameters()]
    assert names and not any("bias" in n for n in names)
    assert sum(p.numel() for p in net.parameters()) == 226 * 200 + 200 * 200 + 200 * 113
    default = mlp_model("mlp", 10, (40,))
    assert sum(p.numel() for p in default.parameters()) == 40 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


# ---- end to end ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "preset, extra",
    [
        ("grokking_softmax_f32_cpu", []),
        ("grokking_stablemax_cpu", []),
        ("grokking_orthograd_cpu", []),
        ("grokking_softmax_f32_cpu", ["hardware.precision=64-true"]),
    ],
)
def test_grokking_presets_run_end_to_end(preset, extra, make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg([f"+repro={preset}", "logger=csv", "limits.max_epochs=3", *extra])
    assert cfg.train.batch_size == 5107 and cfg.optimizer.base.eps == 1e-25
    assert cfg.model.name == "mlp" and list(cfg.model.hidden) == [200, 200] and cfg.model.bias is False
    seen: set[tuple[torch.dtype, torch.dtype]] = set()

    class DtypeProbe(pl.Callback):
        """Records (input dtype, weight dtype) of the network's forward passes."""

        def on_fit_start(self, trainer, module):
            module.net.register_forward_pre_hook(
                lambda net, args: seen.add((args[0].dtype, next(net.parameters()).dtype))
            )

    real_callbacks = builders.build_callbacks
    monkeypatch.setattr(builders, "build_callbacks", lambda *a, **k: [DtypeProbe(), *real_callbacks(*a, **k)])
    record = run(cfg)
    dtype = torch.float64 if "hardware.precision=64-true" in extra else torch.float32
    assert seen == {(dtype, dtype)}
    assert record["status"] == "finished", record.get("error")
    assert record["repro"]["paper"] == "grokking"
    assert len(record["history"]) == 3 and record["timing"]["steps"] == 3  # full batch: one step per epoch
    assert 0.0 <= record["metrics"]["final"]["test/acc"] <= 1.0
    json.dumps(record)
