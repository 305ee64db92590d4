"""A small CNN for 8x8 digits and 28x28 / 32x32 images (model=tiny_cnn), whose parameter count is matched with an MLP
by its `channels` (README: setting): conv3x3(c) -> ReLU -> max-pool 2 -> conv3x3(2c) -> ReLU -> max-pool 2 -> linear.
No BatchNorm, so the training accuracy the EMC search checks is that of the same function it trained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor, nn

from optrepro.config_schema import PosInt, Section, Text, check_node
from optrepro.errors import InvalidConfigError


class TinyCNNKnobs(Section):
    """The `model` node of tiny_cnn (configs/model/tiny_cnn.yaml), typed once."""

    target: Text | None = Field(None, alias="_target_")
    name: Text
    channels: PosInt


def check_knobs(node: DictConfig | Mapping[str, Any]) -> TinyCNNKnobs:
    return check_node(node, "model", TinyCNNKnobs)


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int, input_shape: Sequence[int], channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(int(input_shape[0]), channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(1, *[int(s) for s in input_shape])).shape[1]
        self.fc = nn.Linear(flat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def tiny_cnn(name: str, num_classes: int, input_shape: Sequence[int], channels: int = 3) -> nn.Module:
    if len(input_shape) != 3:
        raise InvalidConfigError(
            "model",
            f"tiny_cnn takes images (C, H, W), got input_shape={tuple(input_shape)}",
            "use model=mlp for vector data",
        )
    check_knobs({"name": name, "channels": channels})  # as the config check does
    return TinyCNN(num_classes, input_shape, channels)


tiny_cnn.validate = check_knobs  # the config check calls it with the model node, before any work
