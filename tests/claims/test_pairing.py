"""Pairing by seed is sound: arms the policy pairs start from the same weights and see the same batches per seed."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from helpers.compose import compose_config
from omegaconf import OmegaConf

from optrepro import builders
from optrepro.claims.evidence import shares_init_and_order

BASE = ["dataset=synthetic", "model=small_cnn", "model.width=8", "train.batch_size=32"]


def start_of_run(overrides: list[str], seed: int, tmp_path) -> tuple[dict, list[torch.Tensor]]:
    """The initial weights and the sample order of epochs 0-1, made as optrepro.train.run makes them
    (seed everything, build the data, build the network); the optimizer draws random numbers in between."""
    cfg = compose_config([*BASE, *overrides, f"seed={seed}"], tmp_path)
    pl.seed_everything(seed, verbose=False)
    datamodule, data = builders.build_data(cfg)
    net = builders.build_net(cfg, data)
    torch.rand(17)  # an optimizer that draws (e.g. a random perturbation) must not move the batch order
    datamodule.place_on(torch.device("cpu"))
    batches = datamodule.train_dataloader()
    order = [torch.cat([idx for _, _, idx in batches.epoch_batches(epoch)]) for epoch in (0, 1)]
    return {k: v.clone() for k, v in net.state_dict().items()}, order


def semantic(overrides: list[str], tmp_path) -> dict:
    return OmegaConf.to_container(compose_config([*BASE, *overrides], tmp_path), resolve=True)


@pytest.mark.parametrize(
    "arm_a, arm_b",
    [(["optimizer=sam"], ["optimizer=sgd"]), (["optimizer=sam", "optimizer.rho=0.5"], ["optimizer=lion"])],
)
def test_arms_the_policy_pairs_share_initial_weights_and_batch_order(tmp_path, arm_a, arm_b):
    assert shares_init_and_order([semantic(arm_a, tmp_path), semantic(arm_b, tmp_path)])
    weights_a, order_a = start_of_run(arm_a, 3, tmp_path)
    weights_b, order_b = start_of_run(arm_b, 3, tmp_path)
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert all(torch.equal(a, b) for a, b in zip(order_a, order_b))
    _, other_seed = start_of_run(arm_a, 4, tmp_path)
    assert not torch.equal(order_a[0], other_seed[0]), "another seed is another order: the check can fail"


def test_arms_with_another_model_or_batch_size_are_not_paired(tmp_path):
    sgd = semantic(["optimizer=sgd"], tmp_path)
    assert not shares_init_and_order([sgd, semantic(["optimizer=sgd", "model.width=16"], tmp_path)])
    assert not shares_init_and_order([sgd, semantic(["optimizer=sgd", "train.batch_size=64"], tmp_path)])
    weights_narrow, _ = start_of_run([], 3, tmp_path)
    weights_wide, _ = start_of_run(["model.width=16"], 3, tmp_path)
    assert any(weights_narrow[k].shape != weights_wide[k].shape for k in weights_narrow)
