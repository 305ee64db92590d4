"""Multi-layer perceptron over flattened inputs (mnist1d vectors, 8x8 digits, any image).

Options exist for the papers that study them: batch_norm=True gives SAM-ON normalization layers to
perturb; bias=False matches analyses of homogeneous (bias-free) networks.
"""

import math
from collections.abc import Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """Flatten, then [Linear, (BatchNorm1d), ReLU] per hidden width, then a linear classifier."""

    def __init__(
        self,
        num_classes: int,
        input_shape: Sequence[int],
        hidden: Sequence[int] = (256, 256),
        batch_norm: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(input_shape)
        for width in hidden:
            layers.append(nn.Linear(in_features, width, bias=bias))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            in_features = width
        layers.append(nn.Linear(in_features, num_classes, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
