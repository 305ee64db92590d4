"""ResNets for 32x32 inputs: the common CIFAR ResNet-18 and He et al. (2016) ResNet-6n+2.

Two families that the literature both calls "ResNet" on CIFAR, with different shortcuts:
- ResNet-18 (CIFAR form): ImageNet ResNet-18 with a 3x3 stem and no max-pool, 64-512 channels,
  1x1 convolution + BN projection shortcuts (~11.17M parameters for 10 classes).
- ResNet-20/32/44/56/110 (He et al., Sec. 4.2): 16/32/64 channels, 3 stages of n blocks, and
  option A shortcuts (parameter-free: stride-2 subsampling plus zero-padded channels), as the paper
  uses on CIFAR. Option A is what makes ResNet-32 0.46M and ResNet-56 0.85M parameters.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.models.init import he_initialize


class BasicBlock(nn.Module):
    """Post-activation block (conv-BN-ReLU-conv-BN, add, ReLU) with a given shortcut.

    `skip=False` drops the shortcut (the "no-short" nets of Li et al. 2018): a plain deep CNN of the same
    layers and parameter count.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: nn.Module, skip: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        residual = self.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        return self.relu(self.shortcut(x) + residual if self.skip else residual)


class ProjectionShortcut(nn.Module):
    """1x1 convolution + BN (ResNet option B), used by the CIFAR ResNet-18."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
        self.bn = nn.BatchNorm2d(planes)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class ZeroPadShortcut(nn.Module):
    """Option A: subsample spatially by the stride and pad new channels with zeros (no parameters)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        subsampled = x[:, :, :: self.stride, :: self.stride]
        return F.pad(subsampled, (0, 0, 0, 0, 0, self.extra_channels))


def _shortcut(kind: type[nn.Module], in_planes: int, planes: int, stride: int) -> nn.Module:
    """Identity where shapes match; otherwise the family's shortcut kind (option A or B)."""
    if stride == 1 and in_planes == planes:
        return nn.Identity()
    return kind(in_planes, planes, stride)


def _stage(
    shortcut_kind: type[nn.Module], in_planes: int, planes: int, num_blocks: int, stride: int, skip: bool = True
) -> nn.Sequential:
    """`num_blocks` basic blocks; only the first changes width and resolution."""
    blocks = []
    for block_index in range(num_blocks):
        block_stride = stride if block_index == 0 else 1
        shortcut = _shortcut(shortcut_kind, in_planes, planes, block_stride)
        blocks.append(BasicBlock(in_planes, planes, block_stride, shortcut, skip))
        in_planes = planes
    return nn.Sequential(*blocks)


class CifarResNet(nn.Module):
    """3x3 stem, stages of basic blocks (first stage stride 1, others stride 2), pool, linear."""

    def __init__(
        self,
        stage_widths: tuple[int, ...],
        blocks_per_stage: tuple[int, ...],
        shortcut_kind: type[nn.Module],
        num_classes: int,
        in_channels: int,
        skip: bool = True,
    ) -> None:
        super().__init__()
        stem_width = stage_widths[0]
        self.conv1 = nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        in_planes = stem_width
        for stage_index, (width, num_blocks) in enumerate(zip(stage_widths, blocks_per_stage)):
            stride = 1 if stage_index == 0 else 2
            stages.append(_stage(shortcut_kind, in_planes, width, num_blocks, stride, skip))
            in_planes = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        he_initialize(self)

    def forward(self, x: Tensor) -> Tensor:
        features = self.stages(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.pool(features).flatten(1))


def cifar_resnet18(num_classes: int, in_channels: int = 3) -> CifarResNet:
    """The CIFAR ResNet-18 used by most SAM-family papers (64-512 channels, [2, 2, 2, 2])."""
    return CifarResNet((64, 128, 256, 512), (2, 2, 2, 2), ProjectionShortcut, num_classes, in_channels)


def he_cifar_resnet(depth: int, num_classes: int, in_channels: int = 3, skip: bool = True) -> CifarResNet:
    """He et al. (2016) ResNet-(6n+2) with option A shortcuts: 20, 32, 44, 56, 110, ... (skip=False: no shortcuts)."""
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(
            f"He et al. CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}."
        )
    blocks = (depth - 2) // 6
    return CifarResNet((16, 32, 64), (blocks, blocks, blocks), ZeroPadShortcut, num_classes, in_channels, skip)
