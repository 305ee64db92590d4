"""The deep-net full tier (ResNet-18 on CIFAR-10): the official piecewise step-size schedule at hand-computed steps,
its knob errors, the fraction of active units per block by hand, and one ResNet-18 run of a full preset on generated
CIFAR-10 files whose record carries the five block fractions."""

from __future__ import annotations

import pytest
import torch
from datagen.formats import write_cifar_parquet
from helpers.compose import compose_config
from helpers.rejected import rejected_run
from omegaconf import OmegaConf
from torch import nn

from optrepro.errors import InvalidConfigError
from optrepro.train import run
from reproductions.large_step_sparse.feature_sparsity import FeatureSparsityCallback, feature_sparsity
from reproductions.large_step_sparse.schedules import piecewise_large_step

TARGET = "reproductions.large_step_sparse.schedules.piecewise_large_step"


def schedule(steps_per_epoch: int = 10, epochs: int = 100, **knobs):
    cfg = OmegaConf.create({"_target_": TARGET, "name": "lss_piecewise", "warmup_epochs": 0, **knobs})
    return piecewise_large_step(cfg, steps_per_epoch=steps_per_epoch, epochs=epochs, base_lr=0.05)


@pytest.mark.parametrize(("fraction", "after"), [(0.1, 0.02), (0.3, 0.06), (0.5, 0.1)])
def test_piecewise_schedule_at_the_official_decay_points(fraction, after):
    """10 steps an epoch, 100 epochs: step s ends at t = (s + 1) / 10 epochs; the official code's multiplier is 1
    before fraction * 100 epochs, (fraction / 0.5) / 10 until 90, then a tenth of that."""
    factor = schedule(large_fraction=fraction)
    decay_step = int(round(fraction * 1000)) - 1  # the step that completes epoch fraction * 100
    assert factor(0) == 1.0 and factor(decay_step - 1) == 1.0
    assert factor(decay_step) == pytest.approx(after) and factor(898) == pytest.approx(after)
    assert factor(899) == pytest.approx(after / 10) and factor(999) == pytest.approx(after / 10)


def test_piecewise_schedule_exponential_warmup():
    """warmup_exp 1.05: 1.05 ** (percent of the run) during the large phase, 1.05 ** 50 / 10 after it (at 50%)."""
    factor = schedule(large_fraction=0.5, warmup_exp=1.05)
    assert factor(199) == pytest.approx(1.05**20)  # t = 20 epochs of 100
    assert factor(499) == pytest.approx(1.05**50 / 10) and factor(899) == pytest.approx(1.05**50 / 100)


@pytest.mark.parametrize(
    ("knobs", "line"),
    [
        (
            {"large_fraction": 0.95},
            "scheduler.large_fraction: must be < 0.9, got 0.95; set scheduler.large_fraction below 0.9",
        ),
        (
            {"large_fraction": None},
            "scheduler.large_fraction: None is not a number; give a number, e.g. scheduler.large_fraction=0.1",
        ),
        (
            {"large_fraction": 0.5, "warmup_exp": 0.5},
            "scheduler.warmup_exp: 0.5 < 1 (the official power-law warmup is not implemented); "
            "give 1.0 (no warmup) or an exponential base > 1, e.g. 1.05",
        ),
        (
            {"large_fraction": 0.5, "decay_at": 0.5},
            "scheduler.decay_at: not a config key (misspelled, or added with + where nothing reads it); "
            "check the spelling; the keys here are _target_, large_fraction, name, warmup_epochs, warmup_exp",
        ),
    ],
)
def test_piecewise_schedule_bad_knobs_name_the_key(knobs, line):
    with pytest.raises(InvalidConfigError) as error:
        schedule(**knobs)
    assert str(error.value) == line


class TwoStageNet(nn.Module):
    """stages: identity (negatives kept), then ReLU; fc reads the spatial mean of the last stage."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.Sequential(nn.Identity(), nn.ReLU())
        self.fc = nn.Linear(1, 2)

    def forward(self, x):
        return self.fc(self.stages(x).mean((2, 3)))


def test_active_fraction_per_block_by_hand():
    """Two 1x2x2 images [[1, -1], [0, 2]] and [[-3, -1], [4, 0]]: 3 of 8 entries > 0 after each stage (0 is not
    active); the pooled ReLU outputs 0.75 and 1.0 are both active. Two batches sum like one; train mode is kept."""
    images = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]], [[[-3.0, -1.0], [4.0, 0.0]]]])
    net = TwoStageNet().train()
    values = feature_sparsity(net, [images[:1], images[1:]])
    assert values == {
        "sparsity/active_block1": 3 / 8,
        "sparsity/active_block2": 3 / 8,
        "sparsity/active_block3": 1.0,
    }
    assert net.training


def test_callback_knob_errors_name_the_key():
    with pytest.raises(InvalidConfigError) as error:
        FeatureSparsityCallback(samples=0)
    line = (
        "callbacks.feature_sparsity.samples: must be >= 1, got 0; set callbacks.feature_sparsity.samples to at least 1"
    )
    assert str(error.value) == line


def test_full_preset_records_the_active_fraction_of_five_blocks(tmp_path):
    """lss_resnet18_c10_large50 for one epoch of one batch on 20 generated CIFAR-10 images in the hub's parquet
    format: the final metrics hold the five fractions, each in (0, 1]."""
    data = write_cifar_parquet(tmp_path / "cifar10", "cifar10", 20, 4)
    overrides = [
        "+repro=lss_resnet18_c10_large50",
        "hardware.accelerator=cpu",
        "train.batch_size=16",
        "limits.max_epochs=1",
        "logger=csv",
        f"dataset.path={data}",
        "callbacks.feature_sparsity.samples=8",
        "callbacks.feature_sparsity.batch_size=4",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.runs_dir={tmp_path / 'runs'}",
    ]
    record = run(compose_config(overrides))
    assert record["status"] == "finished", record["error"]
    final = record["metrics"]["final"]
    fractions = [final[f"sparsity/active_block{block}"] for block in range(1, 6)]
    assert all(0.0 < value <= 1.0 for value in fractions), fractions


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "scheduler.large_fraction=0.95",
            "scheduler.large_fraction: must be < 0.9, got 0.95; set scheduler.large_fraction below 0.9",
        ),
        (
            "callbacks.feature_sparsity.every_n_epochs=0",
            "callbacks.feature_sparsity.every_n_epochs: must be >= 1, got 0; "
            "set callbacks.feature_sparsity.every_n_epochs to at least 1",
        ),
    ],
)
def test_bad_knobs_stop_run_py_before_any_work(override, line, tmp_path):
    stderr = rejected_run(["+repro=lss_resnet18_c10_large50", override], tmp_path)
    assert f"optrepro: error: {line}" in stderr.splitlines()
