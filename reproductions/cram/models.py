"""ResNet-20 as in the CrAM code (IST-DASLab/CrAM ``models/resnet_cifar10.py``): He et al.'s CIFAR ResNet-20 widths
(16, 32, 64) and three blocks per stage, but with projection shortcuts (1x1 convolution + BatchNorm) where the
shape changes, not the zero-padding "option A" of the product's ``model=resnet32`` family. Built from the
product's ``CifarResNet``; about 0.27M parameters."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from optrepro.models.cifar_resnet import CifarResNet, ProjectionShortcut
from optrepro.models.factories import image_channels


def resnet20_projection_model(name: str, num_classes: int, input_shape: Sequence[int]) -> nn.Module:
    return CifarResNet((16, 32, 64), (3, 3, 3), ProjectionShortcut, num_classes, image_channels(input_shape, name))
