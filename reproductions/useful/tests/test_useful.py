"""USEFUL: the per-class split, the upsampled counts, the fresh retrain, the patch data, and knobs that stop early."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from helpers.compose import compose_config
from helpers.rejected import rejected_run
from omegaconf import OmegaConf

from optrepro import builders
from optrepro.config_schema import validate_config
from optrepro.data.splits import ArraySplits
from optrepro.errors import InvalidConfigError
from optrepro.train import run
from reproductions.useful.clustering import slow_learnable
from reproductions.useful.patch_data import load_fast_slow_patches
from reproductions.useful.task import UsefulTask
from reproductions.useful.upsample import upsampled


def two_blob_class(rng, centre_fast, centre_slow, n_fast, n_slow):
    """Outputs of one class: a tight blob learned early (low loss) and a far one not learned yet (high loss)."""
    outputs = np.concatenate(
        [centre_fast + 0.01 * rng.standard_normal((n_fast, 2)), centre_slow + 0.01 * rng.standard_normal((n_slow, 2))]
    )
    losses = np.concatenate([np.full(n_fast, 0.1), np.full(n_slow, 2.0)])
    return outputs, losses


def test_clustering_picks_exactly_the_high_loss_blob_of_each_class():
    rng = np.random.default_rng(0)
    out0, loss0 = two_blob_class(rng, np.array([5.0, -5.0]), np.array([0.2, 0.1]), 30, 7)
    out1, loss1 = two_blob_class(rng, np.array([-5.0, 5.0]), np.array([0.1, 0.3]), 12, 20)
    outputs, losses = np.concatenate([out0, out1]), np.concatenate([loss0, loss1])
    labels = np.array([0] * 37 + [1] * 32)
    order = rng.permutation(len(labels))  # examples interleaved: indices must come back as positions in this order
    slow = slow_learnable(outputs[order], labels[order], losses[order], clusters=2, seed=3)
    expected = np.sort(np.flatnonzero(np.isin(order, np.r_[30:37, 37 + 12 : 69])))
    assert slow.tolist() == expected.tolist()


def test_clustering_is_per_class_not_global():
    """Globally the two classes are the two clusters; per class, each class still gives up its own slow examples."""
    outputs = np.array([[0.0, 0.0], [0.0, 0.1], [0.0, 1.0], [10.0, 0.0], [10.0, 0.1], [10.0, 1.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    losses = np.array([0.1, 0.1, 3.0, 0.2, 0.2, 4.0])
    assert slow_learnable(outputs, labels, losses).tolist() == [2, 5]


def splits_of(n_train: int) -> ArraySplits:
    x = torch.arange(n_train * 3, dtype=torch.float32).reshape(n_train, 3)
    y = torch.arange(n_train) % 2
    return ArraySplits(
        x, y, x[:4], y[:4], num_classes=2, name="t", mean=(0.0,) * 3, std=(1.0,) * 3, y_train_clean=y.clone()
    )


@pytest.mark.parametrize("factor", [2, 3])
def test_upsampling_repeats_the_chosen_examples_factor_times(factor):
    splits, chosen = splits_of(10), np.array([1, 4, 7])
    grown = upsampled(splits, chosen, factor)
    assert grown.num_train == 10 + 3 * (factor - 1)
    counts = {int(row[0]) // 3: 0 for row in splits.x_train}
    for row in grown.x_train:
        counts[int(row[0]) // 3] += 1
    assert counts == {i: (factor if i in (1, 4, 7) else 1) for i in range(10)}
    assert torch.equal(grown.y_train, grown.x_train[:, 0].long() // 3 % 2)  # labels travel with their inputs
    assert torch.equal(grown.y_train_clean, grown.y_train)
    assert torch.equal(grown.x_test, splits.x_test) and torch.equal(grown.y_test, splits.y_test)


class Recording(UsefulTask):
    """Keeps the early run's module so the test can look at the network it trained."""

    def build_module(self, cfg, net, data):
        self.early_module = super().build_module(cfg, net, data)
        return self.early_module


def test_the_retrain_starts_from_the_weights_a_plain_run_gets(tmp_path):
    cfg = compose_config(["+repro=useful_smoke"], tmp_path)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # as train.run does
    plain_data = builders.build_data(cfg)[1]
    plain = builders.build_net(cfg, plain_data).state_dict()

    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    task = Recording(**{k: v for k, v in OmegaConf.to_container(cfg.task).items() if k != "_target_"})
    datamodule, data = task.build_data(cfg)
    retrain = builders.build_net(cfg, data).state_dict()
    early = task.early_module.net.state_dict()

    assert len(task.early_module.history) == cfg.task.separating_epoch  # the early run stopped at the separation
    assert all(torch.equal(plain[k], retrain[k]) for k in plain)  # fresh weights, the same as the baseline's
    assert any(not torch.equal(early[k], retrain[k]) for k in plain)  # not the early network's trained weights
    assert data.num_train == datamodule.num_train_samples > plain_data.num_train  # the slow cluster was added


def test_record_says_how_long_the_grown_epoch_is(tmp_path):
    """useful_smoke: 80 examples, batch 20 (the short last batch kept), 4 epochs: the record's train_samples is 80
    plus the copies it reports, and the run took 4 * ceil(train_samples / 20) steps (what the full-tier test counts)."""
    record = run(compose_config(["+repro=useful_smoke", "logger=csv"], tmp_path))
    assert record["status"] == "finished", record["error"]
    samples, copies = record["extra"]["train_samples"], record["extra"]["useful_copies"]
    assert 0 < copies < 80 and samples == 80 + copies
    assert record["timing"]["steps"] == 4 * -(-samples // 20)


def test_patch_data_without_noise_is_the_construction():
    cfg = OmegaConf.create(
        {
            "n_train": 400,
            "n_test": 10,
            "dim": 5,
            "patches": 3,
            "alpha": 0.75,
            "beta_fast": 1.0,
            "beta_slow": 0.2,
            "noise_std": 0.0,
            "data_seed": 0,
        }
    )
    splits = load_fast_slow_patches(cfg, ".")
    x = splits.x_train.reshape(400, 3, 5).double()
    sign = (2 * splits.y_train - 1).double()
    slow_norm, fast_norm = x[:, 1].norm(dim=1), x[:, 0].norm(dim=1)
    assert torch.allclose(slow_norm, torch.full((400,), 0.2, dtype=torch.float64), atol=1e-6)
    has_fast = fast_norm > 0.5
    assert torch.allclose(fast_norm[has_fast], torch.ones(int(has_fast.sum()), dtype=torch.float64), atol=1e-6)
    assert 0.68 < has_fast.double().mean() < 0.82  # alpha = 0.75 of 400 draws
    assert (x[:, 2] == 0).all()
    v_slow = x[0, 1] / (0.2 * sign[0])
    v_fast = x[has_fast][0, 0] / sign[has_fast][0]
    assert torch.allclose(x[:, 1], 0.2 * sign[:, None] * v_slow, atol=1e-6)  # one slow direction, signed by label
    assert abs(float(v_slow @ v_fast)) < 1e-6  # orthogonal features
    assert torch.equal(load_fast_slow_patches(cfg, ".").x_test, splits.x_test)  # data_seed fixes every draw


TASK_KNOBS = [
    ("task.separating_epoch=0", "task.separating_epoch: must be >= 1, got 0; set task.separating_epoch to at least 1"),
    (
        "task.separating_epoch=4",
        (
            "task.separating_epoch: 4 is not before the run's last epoch (train.epochs=4); "
            "separate after ~5-10% of train.epochs"
        ),
    ),
    ("task.upsample_factor=1", "task.upsample_factor: must be >= 2, got 1; set task.upsample_factor to at least 2"),
    ("task.clusters=1.5", "task.clusters: 1.5 is not a whole number; give an integer, e.g. task.clusters=2"),
    ("task.outputs=features", "task.outputs: unknown value 'features'; valid choices: logits, softmax"),
]


@pytest.mark.parametrize("override,line", TASK_KNOBS)
def test_bad_task_knobs_fail_the_config_check(override, line, tmp_path):
    """The check run.py makes first (config_schema.validate_config, rule task_config), before any folder or data."""
    with pytest.raises(InvalidConfigError) as raised:
        validate_config(compose_config(["+repro=useful_smoke", override], tmp_path))
    assert str(raised.value) == line


@pytest.mark.parametrize(
    "override,line",
    [
        (TASK_KNOBS[1][0], TASK_KNOBS[1][1]),
        ("dataset.alpha=1.5", "dataset.alpha: must be <= 1, got 1.5; set dataset.alpha to at most 1"),
    ],
)
def test_bad_knobs_stop_run_py_in_one_line(override, line, tmp_path):
    stderr = rejected_run(["+repro=useful_smoke", override], tmp_path, timeout=600)
    assert stderr == f"optrepro: error: {line}\n"
