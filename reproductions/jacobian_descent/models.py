"""The paper's small CNNs (Appendix D.3, Tables 2-5): 3x3 convolutions, stride 1, no padding, biases, ELU, no
normalization layers, PyTorch's default initialization.

``variant``: ``mnist`` (Table 5: MNIST, Fashion-MNIST, Kuzushiji-MNIST; 1 x 28 x 28 inputs), ``cifar10`` (Table 3;
3 x 32 x 32), ``svhn`` (Table 2; 3 x 32 x 32). ``scale`` scales every channel and hidden count (1.0: the paper's;
the cpu tier may use less).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import nn

from optrepro.config_schema import PosFloat, Section, Text, check_node, choice

# (conv1 out, conv2 out, conv2 groups, conv3 out, conv3 groups, hidden) at scale 1
VARIANTS = {
    "mnist": (32, 64, 1, 64, 1, 128),  # Table 5
    "cifar10": (32, 64, 32, 64, 64, 128),  # Table 3
    "svhn": (16, 32, 16, 32, 32, 64),  # Table 2
}


class PaperCNNKnobs(Section):
    """The `model` node of paper_cnn (configs/model/paper_cnn.yaml), typed once; the defaults are the function's."""

    target: Text | None = Field(None, alias="_target_")
    name: Text
    variant: Annotated[str, choice("reproductions.jacobian_descent.models:VARIANTS")] = "mnist"
    scale: PosFloat = 1.0


def check_knobs(node: DictConfig | Mapping[str, Any]) -> PaperCNNKnobs:
    return check_node(node, "model", PaperCNNKnobs)


def _scaled(channels: int, scale: float, groups: int) -> int:
    return max(groups, int(round(channels * scale)))


def paper_cnn(
    name: str, num_classes: int, input_shape: Sequence[int], variant: str = "mnist", scale: float = 1.0
) -> nn.Module:
    check_knobs({"name": name, "variant": variant, "scale": scale})  # as the config check does
    c1, c2, g2, c3, g3, hidden = VARIANTS[variant]
    c1 = _scaled(c1, scale, 1)
    # grouped convolutions keep the paper's ratio (groups = input channels): scale groups with the channels
    g2 = c1 if g2 > 1 else 1
    c2 = _scaled(c2, scale, g2)
    c2 -= c2 % g2
    g3 = c2 if g3 > 1 else 1
    c3 = _scaled(c3, scale, g3)
    c3 -= c3 % g3
    hidden = _scaled(hidden, scale, 1)
    channels = int(input_shape[0])
    features = nn.Sequential(
        nn.Conv2d(channels, c1, 3),
        nn.ELU(),
        nn.Conv2d(c1, c2, 3, groups=g2),
        nn.MaxPool2d(2, 2),
        nn.ELU(),
        nn.Conv2d(c2, c3, 3, groups=g3),
        nn.MaxPool2d(3, 3),
        nn.ELU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        flat = features(torch.zeros(1, *[int(s) for s in input_shape])).shape[1]
    return nn.Sequential(features, nn.Linear(flat, hidden), nn.ELU(), nn.Linear(hidden, num_classes))


paper_cnn.validate = check_knobs  # the config check calls it with the model node, before any work
