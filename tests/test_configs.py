"""Every config in every group composes and instantiates; every repro preset composes; bad choices say what is valid."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from helpers.compose import compose_config
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from optrepro.config import (
    config_hash,
    per_device_batch_size,
    setting_hash,
)
from optrepro.errors import ConfigError
from optrepro.optim.factory import build_optimizer
from optrepro.paths import CONFIG_DIR, REPO_ROOT, reproduction_config_dirs

GROUPS = ["model", "dataset", "optimizer", "scheduler", "hardware", "logger", "debug", "cluster"]


DEFAULT_OPTIONS = {
    group: option
    for entry in yaml.safe_load((CONFIG_DIR / "train.yaml").read_text())["defaults"]
    if isinstance(entry, dict)
    for group, option in entry.items()
}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def repro_presets() -> list[str]:
    return sorted(p.stem for d in reproduction_config_dirs() for p in (d / "repro").glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes_and_changes_its_group(group, option):
    """The train.yaml default option composes the default config; every other option changes its group's node (an
    option that composes to the default's content would be a copy nobody can tell apart)."""
    cfg, default = compose_config([f"{group}={option}"]), compose_config([])
    if group == "debug":  # debug presets are global: they cap the run through `limits`
        assert cfg.limits.max_epochs is not None
    elif option == DEFAULT_OPTIONS[group]:
        assert cfg[group] == default[group]
    else:
        assert cfg[group] != default[group], f"{group}={option} composes to the default {group}"


SMALL_INPUTS = {"mlp": (1, 8, 8), "small_cnn": (1, 8, 8)}


@pytest.mark.parametrize("option", options("model"))
def test_every_model_config_instantiates(option):
    cfg = compose_config([f"model={option}"] + (["model.name=resnet18"] if option == "timm" else []))
    net = instantiate(cfg.model, num_classes=10, input_shape=SMALL_INPUTS.get(option, (3, 32, 32)))
    assert sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_config_builds_over_a_model(option):
    import torch

    cfg = compose_config([f"optimizer={option}"])
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 10)
    )
    optimizer, strategy = build_optimizer(cfg.optimizer, net, num_train_samples=100, num_classes=10)
    assert optimizer.param_groups and strategy is not None


@pytest.mark.parametrize("preset", repro_presets())
def test_every_repro_preset_composes_and_pins_its_identity(preset):
    cfg = compose_config([f"+repro={preset}"])
    assert cfg.name == preset == cfg.repro.name
    assert cfg.repro.paper and cfg.repro.tier in ("full", "cpu", "smoke") and cfg.repro.arm
    per_device_batch_size(cfg)


def test_sam_cifar_is_table1_wrn28_10_cifar10_basic():
    cfg = compose_config(["+repro=sam_cifar"])
    assert (cfg.model.depth, cfg.model.widen_factor) == (28, 10)
    assert cfg.dataset.name == "cifar10" and cfg.dataset.augment.cutout == 0
    assert (cfg.train.epochs, cfg.train.batch_size) == (200, 256)
    assert (cfg.optimizer.name, cfg.optimizer.rho, cfg.optimizer.m_sharpness) == ("sam", 0.05, 32)
    assert (cfg.optimizer.base.lr, cfg.optimizer.base.weight_decay) == (0.1, 5e-4)


def test_free_composition_from_the_issue():
    cfg = compose_config(["model=wrn28_10", "optimizer=sam", "dataset=cifar100", "hardware=gpu", "seed=1"])
    assert (cfg.model.name, cfg.optimizer.name, cfg.dataset.name, cfg.hardware.name, cfg.seed) == (
        "wrn28_10",
        "sam",
        "cifar100",
        "gpu",
        1,
    )


def test_unknown_group_choice_lists_the_valid_ones():
    with pytest.raises(MissingConfigException) as info:
        compose_config(["model=wrn99"])
    message = str(info.value)
    assert "wrn99" in message and "wrn28_10" in message and "small_cnn" in message


def test_cli_cfg_job_prints_composed_config_and_bad_choice_lists_options():
    shown = subprocess.run(
        [sys.executable, "run.py", "optimizer=sam", "--cfg", "job"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "rho: 0.05" in shown.stdout and "step: two_pass" in shown.stdout
    bad = subprocess.run(
        [sys.executable, "run.py", "dataset=cifar11", "--cfg", "job"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "cifar11" in bad.stderr and "fashion_mnist" in bad.stderr


def test_hashes_ignore_paths_and_loggers_but_not_the_setting():
    base = compose_config([])
    moved = compose_config(["paths.runs_dir=/elsewhere", "logger=csv"])
    reseeded = compose_config(["seed=7"])
    smoke = compose_config(["debug=smoke"])
    assert config_hash(base) == config_hash(moved)
    assert setting_hash(base) == setting_hash(reseeded) and config_hash(base) != config_hash(reseeded)
    assert setting_hash(base) != setting_hash(smoke), "a debug-limited run must never count as the full setting"


def test_batch_that_does_not_split_over_devices_is_a_clear_error():
    cfg = compose_config(["hardware=ddp_cpu", "train.batch_size=129"])
    with pytest.raises(ConfigError, match="does not split evenly over 2 devices"):
        per_device_batch_size(cfg)
