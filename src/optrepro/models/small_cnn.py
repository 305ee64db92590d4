"""A small BatchNorm CNN for the CPU tier (Fashion-MNIST, MNIST, 8x8 digits, CIFAR smoke runs).

Two pooling stages and a global average pool make it size-agnostic down to 8x8 inputs. It keeps
BatchNorm after every convolution because SAM-ON perturbs only normalization layers, and because
the SAM-family BN handling (clean-pass statistics) must be exercised on the CPU tier too.
"""

from torch import Tensor, nn


def conv_bn_relu(in_planes: int, planes: int) -> nn.Sequential:
    """3x3 same-padding convolution (no bias: BN follows), BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_planes, planes, 3, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """conv(w) x2, pool, conv(2w) x2, pool, conv(4w), global average pool, linear."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, width),
            conv_bn_relu(width, width),
            nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(width, 2 * width),
            conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2, ceil_mode=True),
            conv_bn_relu(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))
