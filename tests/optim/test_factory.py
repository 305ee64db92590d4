"""build_optimizer: every shipped optimizer config builds, and bad choices fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.compose import compose_optimizer
from omegaconf import OmegaConf
from torch import nn

from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.optim.factory import STEP_BUILDERS, build_optimizer, parameter_groups
from optrepro.optim.sam import SAM
from optrepro.optim.standard import StandardStep
from optrepro.optim.two_pass import TwoPassStep

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

EXPECTED = {
    # name: (strategy, rho, adaptive, perturbs everything)
    "sgd": (StandardStep, None, None, None),
    "adamw": (StandardStep, None, None, None),
    "sam": (TwoPassStep, 0.05, False, True),
    "asam": (TwoPassStep, 0.5, True, True),
    "sam_on": (TwoPassStep, 0.5, False, False),
    "asam_on": (TwoPassStep, 10.0, True, False),
}


class OddlyNamedNet(nn.Module):
    """Norm layers whose names contain neither 'norm' nor 'bn' (name-based selection picks nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, bias=False)
        self.foo = nn.BatchNorm2d(4)
        self.bar = nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, 2)
        self.baz = nn.LayerNorm(2)

    def forward(self, x):
        return self.baz(self.head(self.bar(self.foo(self.stem(x))).mean((2, 3))))


def build(cfg, model=None, **kwargs):
    return build_optimizer(cfg, model or OddlyNamedNet(), num_train_samples=100, num_classes=2, **kwargs)


@pytest.mark.parametrize("name", EXPECTED)
def test_shipped_configs_build(name):
    strategy_type, rho, adaptive, perturbs_all = EXPECTED[name]
    optimizer, strategy = build(compose_optimizer(name), accumulate=2, grad_clip=1.0)
    assert type(strategy) is strategy_type
    assert (strategy.accumulate, strategy.grad_clip) == (2, 1.0)
    if strategy_type is TwoPassStep:
        assert isinstance(optimizer, SAM)
        assert strategy.perturbation_sync == "per_device" and strategy.m_sharpness is None
        group = optimizer.param_groups[0]
        assert (group["rho"], group["adaptive"]) == (rho, adaptive)
        assert all(g["perturb"] for g in optimizer.param_groups) is perturbs_all


def test_sam_on_selects_norm_parameters_by_module_type():
    model = OddlyNamedNet()
    optimizer, _ = build(compose_optimizer("sam_on"), model)
    perturbed = {id(p) for g in optimizer.param_groups if g["perturb"] for p in g["params"]}
    expected = [model.foo.weight, model.foo.bias, model.bar.weight, model.bar.bias, model.baz.weight, model.baz.bias]
    assert perturbed == {id(p) for p in expected}


@pytest.mark.parametrize(
    ("normalize_bias", "unscaled"), [(False, ["head.bias", "foo.bias", "bar.bias", "baz.bias"]), (True, [])]
)
def test_asam_rescales_biases_only_with_normalize_bias(normalize_bias, unscaled):
    model = OddlyNamedNet()
    cfg = compose_optimizer("asam")
    cfg.normalize_bias = normalize_bias
    optimizer, _ = build(cfg, model)
    names = {id(p): n for n, p in model.named_parameters()}
    found = {names[id(p)] for g in optimizer.param_groups if not g["adaptive_scale"] for p in g["params"]}
    assert found == set(unscaled)


def test_no_decay_norm_and_bias_zeroes_their_weight_decay():
    model = OddlyNamedNet()
    cfg = compose_optimizer("sgd")
    cfg.no_decay_norm_and_bias = True
    optimizer, _ = build(cfg, model)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {"stem.weight", "head.weight"}


def test_groups_carry_only_the_flags_a_method_reads():
    assert set(parameter_groups(OddlyNamedNet())[0]) == {"params"}


def test_weight_decay_in_perturbation_reaches_the_optimizer():
    cfg = compose_optimizer("sam")
    cfg.weight_decay_in_perturbation = True
    optimizer, _ = build(cfg)
    assert all(g["weight_decay_in_perturbation"] for g in optimizer.param_groups)


@pytest.mark.parametrize(
    ("name", "key", "value", "error", "message"),
    [
        (
            "sam",
            "step",
            "three_pass",
            UnknownChoiceError,
            "valid choices: <module>:<function>, gam, standard, trajectory, two_pass",
        ),
        ("sam", "perturb", "conv_layers", UnknownChoiceError, "valid choices: all, norm_layers"),
        ("sam", "perturbation_sync", "sometimes", ValueError, "valid: per_device, global"),
        ("sgd", "weight_decay_mode", "sideways", UnknownChoiceError, "valid choices: coupled, decoupled"),
        ("sgd", "weight_decay_mode", "decoupled", ConfigError, "SGD applies coupled weight decay"),
    ],
)
def test_invalid_choices_list_the_valid_ones(name, key, value, error, message):
    cfg = compose_optimizer(name)
    cfg[key] = value
    with pytest.raises(error, match=message):
        build(cfg)


def test_weight_decay_in_perturbation_is_rejected_for_decoupled_decay():
    cfg = compose_optimizer("sam")
    cfg.base._target_ = "torch.optim.AdamW"
    cfg.base.pop("nesterov")
    cfg.base.pop("momentum")
    cfg.weight_decay_mode = "decoupled"
    cfg.weight_decay_in_perturbation = True
    with pytest.raises(ConfigError, match="needs coupled"):
        build(cfg)


def test_base_must_be_a_partial():
    cfg = compose_optimizer("sgd")
    cfg.base._partial_ = False
    with pytest.raises(ConfigError, match="_partial_: true"):
        build(cfg)


def test_a_plain_mapping_builds_the_same_optimizer_as_its_config():
    """A plain dict (a caller outside Hydra) loses no knob on the way: every group setting is the config's."""

    def settings(optimizer):
        return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]

    cfg = compose_optimizer("asam", "optimizer.rho=0.7", "optimizer.base.lr=0.3")
    from_mapping, strategy = build(OmegaConf.to_container(cfg))
    assert settings(from_mapping) == settings(build(cfg)[0])
    assert (settings(from_mapping)[0]["rho"], settings(from_mapping)[0]["lr"]) == (0.7, 0.3)
    assert isinstance(strategy, TwoPassStep) and isinstance(from_mapping.base_optimizer, torch.optim.SGD)


def test_registry_names_importable_builders_for_existing_modules():
    for step in ("standard", "two_pass"):
        assert STEP_BUILDERS[step].startswith("optrepro.optim.factory:")
