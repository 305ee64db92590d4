"""A tanh MLP with a scaled Gaussian initialisation: the small-init start that puts the weights near the saddle at 0.

Dauphin et al. (2014) train small MLPs on downscaled MNIST / CIFAR-10; here the initial weights are drawn
N(0, (init_scale)^2 / fan_in), biases 0. With a small ``init_scale`` every hidden unit starts almost silent and the
gradient of each layer is scaled by the (small) weights above it: the origin is a saddle of the training loss and
gradient descent starts on its plateau (README: setting).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from optrepro.errors import InvalidConfigError


class TanhMLP(nn.Module):
    @staticmethod
    def validate(node) -> None:
        """model.init_scale > 0, checked by the config check before any work."""
        if not float(node.get("init_scale", 1.0)) > 0:
            raise InvalidConfigError("model.init_scale", f"must be > 0, got {node.init_scale}", "give a positive scale")

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (32,),
        init_scale: float = 1.0,
        **_: object,
    ) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *[int(h) for h in hidden], num_classes]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():
            for layer in self.linears:
                layer.weight.normal_(0.0, float(init_scale) / math.sqrt(layer.in_features))
                layer.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for layer in self.linears[:-1]:
            h = torch.tanh(layer(h))
        return self.linears[-1](h)
