"""model.skip=false: the ResNet without shortcuts that Li et al. compare against (same layers and parameters)."""

from __future__ import annotations

import torch
from helpers.compose import compose_config

from optrepro.config import config_hash
from optrepro.models import he_cifar_resnet


def test_without_skip_a_block_outputs_its_residual_branch_only():
    torch.manual_seed(0)
    with_skip, without = he_cifar_resnet(8, 10, in_channels=1), he_cifar_resnet(8, 10, in_channels=1, skip=False)
    without.load_state_dict(with_skip.state_dict())  # same parameters, shortcuts are parameter-free
    block = without.stages[0][0].eval()
    x = torch.randn(2, 16, 8, 8)
    residual = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), torch.relu(residual))
    assert not torch.allclose(with_skip.stages[0][0].eval()(x), block(x))
    assert sum(p.numel() for p in with_skip.parameters()) == sum(p.numel() for p in without.parameters())


def test_the_shipped_resnet_configs_have_no_skip_key_so_earlier_records_keep_their_hashes():
    """The knob is model-specific (the default model has none), so it is not declared in configs/model: the
    factory's default (skip=True) is the old behaviour, and presets that compare arms set it explicitly."""
    for name in ("resnet32", "resnet56"):
        assert "skip" not in compose_config([f"model={name}"]).model
    base = {"seed": 0, "model": {"name": "resnet56", "depth": 56}}
    assert config_hash(base | {"model": {"name": "resnet56", "depth": 56, "skip": False}}) != config_hash(base)
