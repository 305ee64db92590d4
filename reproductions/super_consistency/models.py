"""Width-N networks in a chosen parametrisation (parametrisation.py): an MLP (cpu tier) and the paper's
SimpleConvNet (full tier). No biases, ReLU, raw weights drawn with each layer's init std, scales in the forward pass.

Both expose `width` and `lr_multiplier` (read by step.py and sharpness.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.errors import InvalidConfigError
from reproductions.super_consistency.parametrisation import check_model, layer_scale, lr_multiplier


class ScaledLinear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, parametrisation: str, role: str) -> None:
        super().__init__()
        scale = layer_scale(parametrisation, role, fan_in)
        self.multiplier = scale.multiplier
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) * scale.init_std)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.multiplier)


class ScaledConv2d(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, parametrisation: str, role: str, stride: int, padding: int
    ) -> None:
        super().__init__()
        scale = layer_scale(parametrisation, role, in_channels * 9)
        self.multiplier, self.stride, self.padding = scale.multiplier, stride, padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3) * scale.init_std)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.multiplier, stride=self.stride, padding=self.padding)


class ScaledMLP(nn.Module):
    """Flatten, `depth` hidden layers of `width` ReLU units, readout."""

    def __init__(
        self, num_classes: int, input_shape: Sequence[int], width: int, depth: int, parametrisation: str
    ) -> None:
        super().__init__()
        check_model(dict(width=width, depth=depth, parametrisation=parametrisation))
        self.width = width
        self.lr_multiplier = lr_multiplier(parametrisation, width)
        fans = [math.prod(input_shape)] + [width] * depth
        self.hidden = nn.ModuleList(
            ScaledLinear(a, b, parametrisation, "input" if i == 0 else "hidden")
            for i, (a, b) in enumerate(itertools.pairwise(fans))
        )
        self.readout = ScaledLinear(width, num_classes, parametrisation, "readout")

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.readout(h)


class ScaledConvNet(nn.Module):
    """SimpleConvNet (official repo [repo]): conv 3x3 stride 2 -> ReLU -> max-pool 2 -> conv 3x3 stride 4 -> ReLU ->
    max-pool 2 -> readout on the N features (1x1 spatially for 28x28 and 32x32 inputs). Padding 1 then 0: the JAX
    port's 'SAME' pads conv2 by 0 and conv1 by 0/1 (asymmetric); here conv1 pads 1 on both sides."""

    def __init__(self, num_classes: int, input_shape: Sequence[int], width: int, parametrisation: str) -> None:
        super().__init__()
        check_model(dict(width=width, parametrisation=parametrisation))
        self.width = width
        self.lr_multiplier = lr_multiplier(parametrisation, width)
        self.conv1 = ScaledConv2d(int(input_shape[0]), width, parametrisation, "input", stride=2, padding=1)
        self.conv2 = ScaledConv2d(width, width, parametrisation, "hidden", stride=4, padding=0)
        with torch.no_grad():
            spatial = self._features(torch.zeros(1, *[int(s) for s in input_shape])).shape[-1]
        if spatial != 1:
            raise InvalidConfigError(
                "model",
                f"scaled_convnet's features are {spatial}x{spatial} for input {tuple(input_shape)}",
                "use 28x28 to 32x32 images (the paper's SimpleConvNet) or model=scaled_mlp",
            )
        self.readout = ScaledLinear(width, num_classes, parametrisation, "readout")

    def _features(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self._features(x).flatten(1))


def scaled_mlp(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    width: int = 64,
    depth: int = 2,
    parametrisation: str = "mup",
) -> nn.Module:
    return ScaledMLP(num_classes, tuple(input_shape), width, depth, parametrisation)


def scaled_convnet(
    name: str, num_classes: int, input_shape: Sequence[int], width: int = 64, parametrisation: str = "mup"
) -> nn.Module:
    if len(input_shape) != 3:
        raise InvalidConfigError(
            "model",
            f"scaled_convnet takes images (C, H, W), got input_shape={tuple(input_shape)}",
            "use model=scaled_mlp for vector data",
        )
    return ScaledConvNet(num_classes, tuple(input_shape), width, parametrisation)
