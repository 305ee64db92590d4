"""The paper's small CNNs (Appendix D.3, Tables 2-5): 3x3 convolutions, stride 1, no padding, biases, ELU, no
normalization layers, PyTorch's default initialization.

``variant``: ``mnist`` (Table 5: MNIST, Fashion-MNIST, Kuzushiji-MNIST; 1 x 28 x 28 inputs), ``cifar10`` (Table 3;
3 x 32 x 32), ``svhn`` (Table 2; 3 x 32 x 32). ``scale`` scales every channel and hidden count (1.0: the paper's;
the cpu tier may use less).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# (conv1 out, conv2 out, conv2 groups, conv3 out, conv3 groups, hidden) at scale 1
VARIANTS = {
    "mnist": (32, 64, 1, 64, 1, 128),  # Table 5
    "cifar10": (32, 64, 32, 64, 64, 128),  # Table 3
    "svhn": (16, 32, 16, 32, 32, 64),  # Table 2
}


def _scaled(channels: int, scale: float, groups: int) -> int:
    return max(groups, int(round(channels * scale)))


def paper_cnn(
    name: str, num_classes: int, input_shape: Sequence[int], variant: str = "mnist", scale: float = 1.0
) -> nn.Module:
    if variant not in VARIANTS:
        raise ValueError(f"model.variant={variant!r} is not one of the choices; allowed: {', '.join(VARIANTS)}")
    if not scale > 0:
        raise ValueError(f"model.scale={scale}: must be > 0")
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
