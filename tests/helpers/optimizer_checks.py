"""Checks every optimizer must pass, shared by the optimizer test modules."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


def assert_resume_is_exact(
    make: Callable[[], tuple[nn.Module, Optimizer]], inputs: Tensor, before: int = 4, after: int = 5
) -> None:
    """Train `before` steps, save the optimizer's state_dict as a checkpoint would (a deep copy: state_dict()
    aliases the live tensors), load it into a fresh model and optimizer, then train both `after` more steps:
    the weights must stay bit-identical."""

    def steps(model: nn.Module, optimizer: Optimizer, count: int) -> None:
        for _ in range(count):
            optimizer.zero_grad()
            model(inputs).square().mean().backward()
            optimizer.step()

    model, optimizer = make()
    steps(model, optimizer, before)
    saved = copy.deepcopy(optimizer.state_dict())
    resumed_model, resumed_optimizer = make()
    resumed_model.load_state_dict(model.state_dict())
    resumed_optimizer.load_state_dict(saved)
    steps(model, optimizer, after)
    steps(resumed_model, resumed_optimizer, after)
    for a, b in zip(model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a.detach(), b.detach())
