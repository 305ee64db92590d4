"""The contract of every optimizer config, shared and papers', in one table (as pytorch_optimizer tests its own):
it builds and trains through its step strategy, resumes bit-exactly from a checkpoint of its state, splits a batch
into micro-batches as documented, and a bad knob stops the config check in one line.

A new `configs/optimizer/<name>.yaml` (or a paper's) needs a row here: test_every_optimizer_config_has_a_row."""

from __future__ import annotations

import copy
from typing import NamedTuple

import pytest
import torch
from helpers.compose import compose_config
from helpers.rejected import config_check_error
from hydra.utils import instantiate
from torch import nn

from optrepro.errors import ConfigError
from optrepro.optim.backend import LocalBackend
from optrepro.optim.factory import build_optimizer
from optrepro.paths import CONFIG_DIR, reproduction_config_dirs


class Row(NamedTuple):
    bad: tuple[str, str]  # an override that must stop the config check, and the key its one line starts with
    accumulates: bool = True  # accumulate=2 takes the same step as one batch; False: the builder refuses it
    model: str | None = None  # the `model=` option a paper's step needs (else a small MLP)


ONE_BATCH = False  # the step takes the whole batch (a Hessian, finite differences, queries): no micro-batches

CONTRACTS = {
    "sgd": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "adam": Row(("optimizer.base.lr=0", "optimizer.base.lr")),
    "adamw": Row(("optimizer.base.weight_decay=-1", "optimizer.base.weight_decay")),
    "lion": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "shampoo": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "distributed_shampoo": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "sam": Row(("optimizer.rho=-1", "optimizer.rho")),
    "asam": Row(("optimizer.eta=-1", "optimizer.eta")),
    "sam_on": Row(("optimizer.perturb=some", "optimizer.perturb")),
    "asam_on": Row(("optimizer.m_sharpness=0", "optimizer.m_sharpness")),
    "gam": Row(("optimizer.paper.rho=-1", "optimizer.paper.rho")),
    "saf": Row(("optimizer.trajectory_weight=-1", "optimizer.trajectory_weight")),
    "mesa": Row(("optimizer.trajectory_weight=-1", "optimizer.trajectory_weight")),
    "adamw_cwd": Row(("optimizer.cwd_mask=half", "optimizer.cwd_mask")),
    "cram": Row(("optimizer.rho=-1", "optimizer.rho")),
    "deepzero": Row(("optimizer.base.lr=-1", "optimizer.base.lr"), ONE_BATCH),
    "adam_clip": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "sgd_clip": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "grad_reg": Row(("optimizer.base.lr=-1", "optimizer.base.lr"), ONE_BATCH),
    "adamw_hf": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "cautious_adamw": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "grams": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "mfac": Row(("optimizer.damp=0", "optimizer.damp")),
    "sfn": Row(("optimizer.method=newton", "optimizer.method"), ONE_BATCH),
    "sam_adam": Row(("optimizer.rho=-1", "optimizer.rho")),
    "shampoo4bit": Row(("optimizer.base.lr=-1", "optimizer.base.lr")),
    "scaled_sgd": Row(("optimizer.base.lr=-1", "optimizer.base.lr"), model="scaled_mlp"),
}
NAMES = sorted(CONTRACTS)


def optimizer_configs() -> set[str]:
    folders = [CONFIG_DIR / "optimizer", *(d / "optimizer" for d in reproduction_config_dirs())]
    return {path.stem for folder in folders for path in folder.glob("*.yaml")}


def test_every_optimizer_config_has_a_row():
    assert optimizer_configs() == set(CONTRACTS)


BATCH = 8


def batch():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 1, 4, 4, generator=generator)
    return x, torch.randint(0, 3, (BATCH,), generator=generator), torch.arange(BATCH)


def setup(name: str, accumulate: int = 1):
    """A small net (the row's model, else an MLP) and the optimizer config `name` as a run composes it, built for
    24 training samples."""
    row = CONTRACTS[name]
    cfg = compose_config(
        [f"optimizer={name}", f"train.accumulate={accumulate}", *([f"model={row.model}"] * bool(row.model))]
    )
    torch.manual_seed(0)
    if row.model:
        model = instantiate(cfg.model, num_classes=3, input_shape=(1, 4, 4))
    else:
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 3))
    optimizer, strategy = build_optimizer(
        cfg.optimizer, model, num_train_samples=3 * BATCH, num_classes=3, accumulate=accumulate, grad_clip=None
    )
    return model, optimizer, strategy


def train(model, strategy, steps: int, seed: int, epoch: int = 0) -> list[float]:
    torch.manual_seed(seed)  # a strategy that draws random numbers draws the same ones on both paths
    backend = LocalBackend(model)
    return [float(strategy.training_step(backend, batch(), epoch=epoch).loss) for _ in range(steps)]


@pytest.mark.parametrize("name", NAMES)
def test_trains_and_resumes_bit_exactly(name):
    model, optimizer, strategy = setup(name)
    before = [p.detach().clone() for p in model.parameters()]
    losses = train(model, strategy, 3, seed=1)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), "no parameter moved"
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), strategy.state_dict()))
    resumed_model, resumed_optimizer, resumed_strategy = setup(name)
    resumed_model.load_state_dict(saved[0])
    resumed_optimizer.load_state_dict(saved[1])
    resumed_strategy.load_state_dict(saved[2])
    train(model, strategy, 3, seed=2, epoch=1)
    train(resumed_model, resumed_strategy, 3, seed=2, epoch=1)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in NAMES if CONTRACTS[n].accumulates])
def test_two_micro_batches_take_the_full_batch_step(name):
    """Micro-batching is exact for every strategy that accepts it: the SAM family perturbs with the gradient of
    the whole (per-device) batch."""
    whole, _, whole_strategy = setup(name)
    split, _, split_strategy = setup(name, accumulate=2)
    train(whole, whole_strategy, 2, seed=1)
    train(split, split_strategy, 2, seed=1)
    for a, b in zip(whole.parameters(), split.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if not CONTRACTS[n].accumulates])
def test_a_step_that_takes_the_whole_batch_refuses_micro_batches_in_one_line(name):
    with pytest.raises(ConfigError) as caught:
        setup(name, accumulate=2)
    assert str(caught.value).startswith("train.accumulate: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_knob_stops_the_config_check_in_one_line(name):
    override, key = CONTRACTS[name].bad
    error = str(config_check_error([f"optimizer={name}", override]))
    assert error.startswith(f"{key}: ") and "\n" not in error, error
