"""Gradient Starvation's Colored-MNIST construction on offline digits, and the SD anneal of its official script."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.rejected import stopped_before_any_work

from optrepro import builders
from optrepro.config import semantic_config
from optrepro.data.fashion_mnist_data import DEBIAN_DIR, idx_files
from optrepro.data.registry import load_splits
from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.train import run
from reproductions.gradient_starvation.colored_digits import colored_digits_splits, load_colored_digits
from reproductions.gradient_starvation.losses import AnnealedSpectralDecoupling, spectral_decoupling_loss

KNOBS = {
    "n_test": 20000,
    "n_train": 40000,
    "label_flip": 0.25,
    "color_flip_train": [0.2, 0.1],
    "color_flip_test": 0.9,
    "downsample": 1,
    "data_seed": 3,
}


def colors_of(x: np.ndarray) -> np.ndarray:
    """Which channel holds the image (the other must be all zeros)."""
    per_channel = x.reshape(len(x), 2, -1).sum(-1)
    assert ((per_channel == 0).sum(1) == 1).all(), "every image sits in exactly one channel"
    return (per_channel[:, 1] > 0).astype(np.int64)


def synthetic_pool(n: int = 60000) -> tuple[np.ndarray, np.ndarray]:
    """All-ones 2x2 'images' whose class index is their position mod 10 (half of them < 5)."""
    return np.full((n, 2, 2), 7, dtype=np.uint8), np.arange(n) % 10


def agreement_within_sampling_error(agree: np.ndarray, p: float) -> None:
    sigma = math.sqrt(p * (1 - p) / len(agree))
    assert abs(agree.mean() - p) < 4 * sigma + 1e-12, (agree.mean(), p, sigma)


# ---- the construction -----------------------------------------------------------------------------------------
def test_label_and_colour_agreement_rates_match_the_knobs():
    images, classes = synthetic_pool()
    (x_train, y_train), (x_test, y_test) = colored_digits_splits(images, classes, **KNOBS)
    # The pool's classes after the seeded shuffle are unknown here: recover them from the fixed image order.
    order = np.random.default_rng(KNOBS["data_seed"]).permutation(len(images))
    shape_label = (classes[order] < 5).astype(np.int64)
    test_shape, train_shape = shape_label[:20000], shape_label[20000:60000]
    agreement_within_sampling_error(y_test == test_shape, 0.75)
    agreement_within_sampling_error(y_train == train_shape, 0.75)
    agreement_within_sampling_error(colors_of(x_test) == y_test, 0.1)
    train_colors = colors_of(x_train)
    agreement_within_sampling_error(train_colors[:20000] == y_train[:20000], 0.8)  # environment 1, e = 0.2
    agreement_within_sampling_error(train_colors[20000:] == y_train[20000:], 0.9)  # environment 2, e = 0.1


def test_zero_flips_make_colour_and_shape_exact():
    images, classes = synthetic_pool(1000)
    knobs = dict(KNOBS, n_test=200, n_train=800, label_flip=0.0, color_flip_train=[0.0], color_flip_test=1.0)
    (x_train, y_train), (x_test, y_test) = colored_digits_splits(images, classes, **knobs)
    order = np.random.default_rng(knobs["data_seed"]).permutation(1000)
    assert (y_test == (classes[order][:200] < 5)).all() and (y_train == (classes[order][200:] < 5)).all()
    assert (colors_of(x_train) == y_train).all() and (colors_of(x_test) == 1 - y_test).all()


def test_digits_splits_shapes_binary_labels_and_grey_image_kept():
    cfg = {
        "name": "colored_digits",
        "base": "digits",
        "n_test": 450,
        "n_train": None,
        "data_seed": 0,
        "loader": "reproductions.gradient_starvation.colored_digits.load_colored_digits",
    }
    splits = load_splits(cfg, "unused")  # through the dataset node's own loader, as a run loads it
    assert splits.x_train.shape == (1347, 2, 8, 8) and splits.x_test.shape == (450, 2, 8, 8)
    assert splits.x_train.dtype == torch.uint8 and splits.y_train.dtype == torch.int64
    assert set(splits.y_train.unique().tolist()) == {0, 1} and set(splits.y_test.unique().tolist()) == {0, 1}
    assert splits.num_classes == 2 and splits.mean == (0.0, 0.0) and splits.std == (1.0, 1.0)
    # The digit survives unchanged in one channel: the channel sum is an 8x8 digits image (values k * 255/16).
    grey = splits.x_train.sum(1).numpy()
    assert np.isin(grey, np.rint(np.arange(17) * 255.0 / 16.0)).all() and (grey.reshape(1347, -1).sum(1) > 0).all()
    colors = colors_of(splits.x_train.numpy())
    # 673 / 674 per environment: 4-sigma bounds of 0.8 and 0.9 agreement, and the test set's 0.1.
    agreement_within_sampling_error(colors[:674] == splits.y_train.numpy()[:674], 0.8)
    agreement_within_sampling_error(colors[674:] == splits.y_train.numpy()[674:], 0.9)
    agreement_within_sampling_error(colors_of(splits.x_test.numpy()) == splits.y_test.numpy(), 0.1)


def test_a_loader_that_does_not_import_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"dataset\.loader: cannot import 'reproductions\.nowhere\.load'"):
        load_splits({"name": "mine", "loader": "reproductions.nowhere.load"}, "unused")


def test_same_seed_same_data_other_seed_other_data():
    cfg = {"name": "colored_digits", "data_seed": 5}
    a, b = load_colored_digits(cfg, "unused"), load_colored_digits(cfg, "unused")
    c = load_colored_digits({**cfg, "data_seed": 6}, "unused")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train) and torch.equal(a.x_test, b.x_test)
    assert not torch.equal(a.x_train, c.x_train)


@pytest.mark.skipif(idx_files(DEBIAN_DIR) is None, reason=f"needs Fashion-MNIST IDX files in {DEBIAN_DIR}")
def test_fashion_mnist_base_downsamples_to_14x14():
    cfg = {"name": "colored_digits", "base": "fashion_mnist", "n_test": 100, "n_train": 300, "downsample": 2}
    splits = load_colored_digits(cfg, "unused")
    assert splits.x_train.shape == (300, 2, 14, 14) and splits.x_test.shape == (100, 2, 14, 14)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"label_flip": 1.5}, "label_flip=1.5 is not a probability"),
        ({"color_flip_test": -0.1}, "color_flip_test=-0.1 is not a probability"),
        ({"color_flip_train": [0.2, 2.0]}, "color_flip_train=2.0 is not a probability"),
        ({"color_flip_train": 0.2}, "one colour-flip probability per training environment"),
        ({"color_flip_train": []}, "one colour-flip probability per training environment"),
        ({"n_test": 1797}, "the base has 1797 images"),
        ({"n_train": 2000}, "the base has 1797 images"),
        ({"downsample": 0}, "k >= 1"),
    ],
)
def test_bad_knobs_raise_clear_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_colored_digits({"name": "colored_digits", **bad}, "unused")


def test_unknown_base_lists_the_valid_ones():
    with pytest.raises(UnknownChoiceError, match="fashion_mnist"):
        load_colored_digits({"name": "colored_digits", "base": "mnist"}, "unused")


# ---- the SD anneal ---------------------------------------------------------------------------------------------
def test_annealed_sd_switches_loss_at_the_anneal_step():
    logits = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    targets = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, targets).item()
    sq = (1 + 4 + 0.25 + 9) / 2  # mean over the batch of ||logits||^2
    loss = AnnealedSpectralDecoupling(sd_lambda=0.1, anneal_step=3, anneal_lambda=4.0, anneal_scale=1e-3)
    assert isinstance(loss, AnnealedSpectralDecoupling)
    step = {"now": 2}
    loss.bind_step(lambda: step["now"])
    assert loss(logits, targets).item() == pytest.approx(ce + 0.05 * sq, rel=1e-12)
    step["now"] = 3
    assert loss(logits, targets).item() == pytest.approx(1e-3 * (ce + 2.0 * sq), rel=1e-12)
    assert loss(logits, targets).item() == pytest.approx(1e-3 * spectral_decoupling_loss(logits, targets, 4.0).item())


def test_unbound_annealed_sd_says_what_to_do():
    loss = AnnealedSpectralDecoupling(sd_lambda=0.1, anneal_step=3, anneal_lambda=4.0)
    with pytest.raises(RuntimeError, match="bind_step"):
        loss(torch.zeros(1, 2), torch.tensor([0]))


@pytest.mark.parametrize(
    ("step", "line"),
    [
        (-1, "loss.anneal_step: must be >= 0, got -1; set loss.anneal_step to at least 0"),
        (2.5, "loss.anneal_step: 2.5 is not a whole number; give an integer, e.g. loss.anneal_step=1"),
    ],
)
def test_a_bad_anneal_step_is_an_error_naming_it(step, line):
    with pytest.raises(ConfigError) as error:
        AnnealedSpectralDecoupling(sd_lambda=0.1, anneal_step=step, anneal_lambda=1.0)
    assert str(error.value) == line


@pytest.mark.parametrize(
    "preset, override, line",
    [
        (
            "gs_moons_sd_cpu",
            "loss.sd_lambda=-1",
            "loss.sd_lambda: must be >= 0, got -1; set loss.sd_lambda to at least 0",
        ),
        (
            "gs_cdigits_sd_cpu",
            "loss.anneal_scale=0",
            "loss.anneal_scale: must be > 0, got 0; set loss.anneal_scale above 0",
        ),
        (
            "gs_cdigits_sd_cpu",
            "loss.anneal_lambda=-4",
            "loss.anneal_lambda: must be >= 0, got -4; set loss.anneal_lambda to at least 0",
        ),
    ],
)
def test_bad_sd_weights_stop_before_any_work(preset, override, line, tmp_path):
    assert stopped_before_any_work([f"+repro={preset}", override], tmp_path) == f"optrepro: error: {line}"


def test_the_default_config_has_no_anneal_and_the_sd_preset_binds_the_step(make_cfg):
    assert semantic_config(make_cfg([]))["loss"] == {"_target_": "optrepro.losses.CrossEntropy"}
    loss = builders.build_train_loss(make_cfg(["+repro=gs_cdigits_sd_smoke"]))
    assert isinstance(loss, AnnealedSpectralDecoupling) and loss.anneal_step == 10


# ---- end to end ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset, arm", [("gs_cdigits_erm_smoke", "erm"), ("gs_cdigits_sd_smoke", "sd")])
def test_colored_digits_presets_run_end_to_end(preset, arm, make_cfg):
    cfg = make_cfg([f"+repro={preset}", "logger=csv", "seed=1"])
    assert cfg.dataset.name == "colored_digits" and cfg.dataset.data_seed == 0 and list(cfg.model.hidden) == [300, 300]
    assert cfg.train.batch_size == 1347 and cfg.optimizer.name == "adam" and cfg.optimizer.base.lr == 1e-4
    record = run(cfg)
    assert record["status"] == "finished", record.get("error")
    assert record["repro"] == {"paper": "gradient_starvation", "name": preset, "tier": "smoke", "arm": arm}
    assert len(record["history"]) == 20 and record["timing"]["steps"] == 20  # full batch: one step per epoch
    losses = [row["train/loss"] for row in record["history"]]
    if arm == "sd":  # from step 10 on the loss is scaled by 2e-5: CE ~0.7 before, ~1e-5 after
        assert min(losses[:10]) > 0.3 and max(losses[10:]) < 1e-3
    else:
        assert min(losses) > 0.3
    assert 0.0 <= record["metrics"]["final"]["test/acc"] <= 1.0
    json.dumps(record)
