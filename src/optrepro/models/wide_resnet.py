"""Wide residual network for 32x32 inputs (Zagoruyko & Komodakis, 2016).

Pre-activation basic blocks (BN-ReLU-conv3x3, twice, dropout between the convolutions); a 1x1
convolution projects the shortcut when the width or resolution changes. Depth = 6n + 4.
"""

from torch import Tensor, nn

from optrepro.models.init import he_initialize


class WideBasicBlock(nn.Module):
    """Pre-activation block; the projection reads the pre-activated input, as in the reference code."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False) if needs_projection else None

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu(self.bn1(x))
        residual = self.conv1(activated)
        residual = self.conv2(self.dropout(self.relu(self.bn2(residual))))
        identity = x if self.shortcut is None else self.shortcut(activated)
        return identity + residual


class WideResNet(nn.Module):
    """WRN-depth-k: three stages of widths 16k, 32k, 64k after a 16-channel 3x3 stem."""

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}.")
        blocks_per_stage = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        stages = []
        in_planes = 16
        for stage_index, width in enumerate(widths):
            first_stride = 1 if stage_index == 0 else 2
            blocks = []
            for block_index in range(blocks_per_stage):
                stride = first_stride if block_index == 0 else 1
                blocks.append(WideBasicBlock(in_planes, width, stride, dropout))
                in_planes = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.bn_final = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        he_initialize(self)

    def forward(self, x: Tensor) -> Tensor:
        features = self.relu(self.bn_final(self.stages(self.conv1(x))))
        return self.fc(self.pool(features).flatten(1))
