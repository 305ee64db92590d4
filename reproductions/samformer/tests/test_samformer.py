"""SAMformer (reproductions/samformer): RevIN's exact inverse, attention entropy against closed forms, the channel
permutation equivariance, the toy oracle's error against the noise variance, the CSV split and windows against
hand indexing, the MSE loss, knob errors (one line, exit 2) and a smoke run's record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.rejected import rejected_run
from omegaconf import OmegaConf

from optrepro.errors import ConfigError, DatasetUnavailableError
from optrepro.train import run
from reproductions.samformer.forecasting import MeanSquaredError
from reproductions.samformer.model import RevIN, SAMformer, attention_entropy
from reproductions.samformer.series import load_series, split_rows
from reproductions.samformer.tests.csv_sample import write_csv
from reproductions.samformer.toy import draw_toy, load_toy, oracle_mse


def test_revin_denormalize_inverts_normalize_exactly():
    torch.manual_seed(0)
    revin = RevIN(5)
    with torch.no_grad():
        revin.weight.copy_(torch.tensor([0.5, 2.0, -1.5, 3.0, 1.0]))
        revin.bias.copy_(torch.tensor([0.1, -2.0, 0.0, 4.0, 1.0]))
    x = torch.randn(4, 5, 30, dtype=torch.float64) * 7 + 3
    z, stats = revin.double().normalize(x)
    assert torch.allclose(revin.denormalize(z, stats), x, atol=1e-12)
    unit = (z - revin.bias[:, None]) / revin.weight[:, None]  # standardised over time per window and channel
    assert torch.allclose(unit.mean(-1), torch.zeros(4, 5, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(
        unit.std(-1, unbiased=False) ** 2 * (x.var(-1, unbiased=False) + revin.eps),
        x.var(-1, unbiased=False),
        atol=1e-9,
    )


@pytest.mark.parametrize("n", [2, 7, 321])
def test_entropy_of_uniform_attention_is_log_n(n):
    assert torch.allclose(attention_entropy(torch.full((3, n, n), 1.0 / n)), torch.full((3, n), math.log(n)))


def test_entropy_of_one_hot_rows_is_zero_and_of_a_two_point_row_is_hand_computed():
    assert torch.equal(attention_entropy(torch.eye(4)), torch.zeros(4))
    row = torch.tensor([[0.25, 0.75, 0.0]])
    assert attention_entropy(row).item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_zero_queries_give_uniform_attention_of_entropy_log_d():
    torch.manual_seed(0)
    model = SAMformer("samformer", num_classes=4, input_shape=(7, 12), revin=False)
    with torch.no_grad():
        model.query.weight.zero_()
        model.query.bias.zero_()
    attention = model.attention_of_inputs(torch.randn(3, 7, 12))
    assert torch.allclose(attention, torch.full((3, 7, 7), 1 / 7))
    assert torch.allclose(attention_entropy(attention), torch.full((3, 7), math.log(7)))


@pytest.mark.parametrize("value_dim", [None, 3])
def test_channel_attention_is_permutation_equivariant(value_dim):
    """No positional encoding: permuting the channels permutes the forecast (the official README's remark)."""
    torch.manual_seed(1)
    model = SAMformer("samformer", num_classes=5, input_shape=(6, 16), value_dim=value_dim).double()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.allclose(model(x[:, perm]), model(x)[:, perm], atol=1e-12)


def test_linear_model_is_the_head_alone():
    model = SAMformer("samformer", num_classes=3, input_shape=(2, 5), revin=False, attention="none")
    x = torch.randn(4, 2, 5)
    assert torch.allclose(model(x), x @ model.head.weight.T + model.head.bias)
    assert model.attention_of_inputs(x) is None


def toy_cfg(**overrides):
    base = {
        "name": "samformer_toy",
        "length": 16,
        "horizon": 4,
        "channels": 3,
        "n_train": 4000,
        "n_test": 500,
        "noise_std": 0.5,
        "data_seed": 3,
    }
    return OmegaConf.create({**base, **overrides})


def test_linear_oracle_error_equals_the_noise_variance():
    """The true W's MSE on generated windows: 0.25 = 0.5^2 within three standard errors (the squared N(0, 0.25)
    noise has variance 2 * 0.25^2 per entry), and exactly 0 without noise."""
    weights, (x, y), _ = draw_toy(toy_cfg())
    entries = y.size
    assert abs(oracle_mse(x, y, weights) - 0.25) <= 3 * math.sqrt(2 * 0.25**2 / entries)
    weights, (x, y), _ = draw_toy(toy_cfg(noise_std=0.0))
    assert oracle_mse(x, y, weights) == pytest.approx(0.0, abs=1e-10)


def test_toy_loader_shapes_and_the_same_w_for_train_and_test():
    cfg = toy_cfg(noise_std=0.0)
    splits = load_toy(cfg, "unused")
    weights, _, _ = draw_toy(cfg)
    assert splits.x_train.shape == (4000, 3, 16) and splits.y_test.shape == (500, 3, 4)
    assert splits.num_classes == 4
    assert oracle_mse(splits.x_test, splits.y_test, weights) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize(
    "split, rows, expected",
    [
        ("ett_hour", 17420, (8640, 11520, 14400)),
        ("ett_minute", 69680, (34560, 46080, 57600)),
        ("ratio", 1000, (700, 800, 1000)),
    ],
)
def test_official_split_rows(split, rows, expected):
    assert split_rows(rows, split) == expected


def test_csv_windows_and_standardisation_by_hand(tmp_path):
    path = write_csv(tmp_path / "tiny.csv", rows=60, channels=3, seed=0)
    values = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    cfg = OmegaConf.create(
        {"name": "tiny", "file": "tiny.csv", "path": str(path), "split": "ratio", "length": 8, "horizon": 3}
    )
    splits = load_series(cfg, tmp_path)
    train_end, val_end, _ = 42, 48, 60
    mean, std = values[:train_end].mean(0), values[:train_end].std(0)
    scaled = (values - mean) / std
    assert splits.x_train.shape == (train_end - 8 - 3 + 1, 3, 8)
    assert np.allclose(splits.x_train[5].numpy(), scaled[5:13].T, atol=1e-5)
    assert np.allclose(splits.y_train[5].numpy(), scaled[13:16].T, atol=1e-5)
    assert np.allclose(splits.x_test[0].numpy(), scaled[val_end - 8 : val_end].T, atol=1e-5)  # L rows back
    assert np.allclose(splits.y_test[-1].numpy(), scaled[57:60].T, atol=1e-5)
    assert len(splits.x_test) == 60 - (val_end - 8) - 8 - 3 + 1


def test_missing_csv_says_where_to_put_it_and_where_to_get_it(tmp_path):
    cfg = OmegaConf.create(
        {"name": "etth1", "file": "ETTh1.csv", "path": None, "split": "ett_hour", "length": 8, "horizon": 3}
    )
    with pytest.raises(DatasetUnavailableError) as err:
        load_series(cfg, tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "samformer" / "ETTh1.csv") in message
    assert "dataset.path=" in message and "zhouhaoyi/ETDataset" in message


def test_mse_loss_by_hand():
    outputs, targets = torch.tensor([[[1.0, 2.0]], [[0.0, -1.0]]]), torch.tensor([[[0.0, 0.0]], [[2.0, 1.0]]])
    assert MeanSquaredError()(outputs, targets).item() == pytest.approx((1 + 4 + 4 + 4) / 4)
    with pytest.raises(ConfigError, match="label_smoothing"):
        MeanSquaredError(label_smoothing=0.1)


BAD_KNOBS = [
    ("model.d_model=0", "model.d_model: must be >= 1, got 0; set model.d_model to at least 1"),
    ("model.attention=full", "model.attention: unknown value 'full'; valid choices: channel, none"),
    ("model.revin=maybe", "model.revin: 'maybe' is not true or false; set model.revin=true or model.revin=false"),
    ("model.value_dim=-4", "model.value_dim: must be >= 1, got -4; set model.value_dim to at least 1"),
    (
        "+model.heads=2",
        "model.heads: not a config key (misspelled, or added with + where nothing reads it); check the spelling; "
        "the keys here are _target_, attention, d_model, name, revin, value_dim",
    ),
    (
        "model=mlp",
        "model: 'mlp': the forecasting task maps B x D x L windows to B x D x H; "
        "use model=samformer (model.attention=none for the linear model)",
    ),
    ("dataset.length=0", "dataset.length: must be >= 1, got 0; set dataset.length to at least 1"),
    ("dataset.horizon=2.5", "dataset.horizon: 2.5 is not a whole number; give an integer, e.g. dataset.horizon=1"),
    ("dataset.channels=0", "dataset.channels: must be >= 1, got 0; set dataset.channels to at least 1"),
    ("dataset.n_train=-1", "dataset.n_train: must be >= 1, got -1; set dataset.n_train to at least 1"),
    ("dataset.noise_std=-1.0", "dataset.noise_std: must be >= 0, got -1.0; set dataset.noise_std to at least 0"),
    (
        "+dataset.path=toy.csv",
        "dataset.path: samformer_toy generates its data, so the path would be ignored; remove dataset.path",
    ),
]


@pytest.mark.parametrize("override, message", BAD_KNOBS)
def test_bad_knobs_stop_before_any_work(make_cfg, tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        run(make_cfg(["+repro=samformer_toy_sam_smoke", "logger=csv", override]))
    assert str(err.value) == message
    assert not (tmp_path / "runs").exists()


def test_bad_split_of_a_csv_preset(make_cfg, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(make_cfg(["+repro=samformer_etth1_full", "hardware=cpu", "dataset.split=daily"]))
    assert str(err.value) == "dataset.split: unknown value 'daily'; valid choices: ett_hour, ett_minute, ratio"


def test_run_py_prints_one_error_line_and_exits_2(tmp_path):
    stderr = rejected_run(["+repro=samformer_toy_sam_smoke", "model.attention=full"], tmp_path)
    assert stderr.strip().splitlines()[-1] == (
        "optrepro: error: model.attention: unknown value 'full'; valid choices: channel, none"
    )


def test_smoke_run_records_forecast_metrics_and_entropy(make_cfg, tmp_path, capsys):
    record = run(make_cfg(["+repro=samformer_toy_sam_smoke", "logger=csv"]))
    assert record["status"] == "finished", record["error"]
    final = record["metrics"]["final"]
    (line,) = [text for text in capsys.readouterr().out.splitlines() if text.startswith("epoch 1/1")]
    assert "None" not in line and " acc " not in line and " error " not in line  # a forecast has neither
    assert f"test loss {final['test/loss']:.4f} mse {final['test/mse']:.4f} mae {final['test/mae']:.4f}" in line
    assert final["test/mse"] == final["test/loss"] and final["test/mae"] > 0
    assert 0 <= final["test/attention_entropy"] <= math.log(7) + 1e-6
    assert "train/acc" not in record["history"][-1]
    stored = json.loads(next((tmp_path / "runs").rglob("record.json")).read_text())
    assert stored["config"]["optimizer"]["base"]["_target_"] == "torch.optim.Adam"
    assert stored["config"]["optimizer"]["rho"] == 0.7
