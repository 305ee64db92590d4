"""PyramidNet for 32x32 inputs (Han, Kim & Kim, 2017, "Deep Pyramidal Residual Networks").

Instead of doubling the width at each downsampling, the width grows linearly by alpha / N over all
N residual blocks, from 16 to 16 + alpha (times 4 for bottleneck blocks). Shortcuts are
parameter-free, as in the paper: 2x2 average pooling where the block downsamples, then zero-padding
for the channels the residual branch added. Blocks follow the paper's Fig. 6(d): BN first, no ReLU
before the first convolution, BN after the last one.

Parameter counts (10 classes) are 28,485,477 for PyramidNet-110 (alpha 270) and 26,210,842 for
PyramidNet-272 (alpha 200, bottleneck), equal to the independent imgclsmob ports of the authors'
trained models. The paper's Table 4 says 28.3M and 26.0M: its figures appear to leave out BatchNorm
(without it the 272-layer net has 26.00M; the 110-layer one 28.44M, a 0.5% gap left unexplained).
"""

import torch.nn.functional as F
from torch import Tensor, nn

from optrepro.models.init import he_initialize

BOTTLENECK_EXPANSION = 4


def basic_branch(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """Residual branch of a basic block: BN-conv3x3-BN-ReLU-conv3x3-BN; `planes` outputs."""
    return nn.Sequential(
        nn.BatchNorm2d(in_planes),
        nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, padding=1, bias=False),
        nn.BatchNorm2d(planes),
    )


def bottleneck_branch(in_planes: int, planes: int, stride: int) -> nn.Sequential:
    """Residual branch of a bottleneck block: BN-1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN; 4 x `planes` outputs."""
    out_planes = planes * BOTTLENECK_EXPANSION
    return nn.Sequential(
        nn.BatchNorm2d(in_planes),
        nn.Conv2d(in_planes, planes, 1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(planes),
        nn.ReLU(inplace=True),
        nn.Conv2d(planes, out_planes, 1, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class PyramidBlock(nn.Module):
    """Adds a residual branch to the parameter-free shortcut: avg-pool (if strided), zero-pad channels."""

    def __init__(self, branch: nn.Sequential, stride: int) -> None:
        super().__init__()
        self.branch = branch
        self.downsample = nn.AvgPool2d(2, stride=2, ceil_mode=True) if stride != 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        residual = self.branch(x)
        shortcut = self.downsample(x)
        extra_channels = residual.shape[1] - shortcut.shape[1]
        return residual + F.pad(shortcut, (0, 0, 0, 0, 0, extra_channels))


def pyramid_widths(num_blocks: int, alpha: float, base_width: int = 16) -> list[int]:
    """Widths of blocks k = 1..N before expansion: base + alpha * k / N (the paper's additive rule), rounded."""
    return [round(base_width + alpha * (k + 1) / num_blocks) for k in range(num_blocks)]


class PyramidNet(nn.Module):
    """PyramidNet-depth (alpha); depth = 6n+2 (basic) or 9n+2 (bottleneck) with n blocks per stage."""

    def __init__(
        self,
        depth: int,
        alpha: float,
        bottleneck: bool,
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        make_branch = bottleneck_branch if bottleneck else basic_branch
        expansion = BOTTLENECK_EXPANSION if bottleneck else 1
        layers_per_block = 9 if bottleneck else 6
        if (depth - 2) % layers_per_block != 0 or depth < 2 + layers_per_block:
            raise ValueError(
                f"PyramidNet depth must be {layers_per_block}n+2 with n >= 1 for "
                f"{'bottleneck' if bottleneck else 'basic'} blocks, got {depth}; "
                "e.g. 110 (basic) or 272 (bottleneck)."
            )
        blocks_per_stage = (depth - 2) // layers_per_block
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks = []
        in_planes = 16
        for index, planes in enumerate(pyramid_widths(3 * blocks_per_stage, alpha)):
            starts_stage = index % blocks_per_stage == 0
            stride = 2 if starts_stage and index > 0 else 1
            blocks.append(PyramidBlock(make_branch(in_planes, planes, stride), stride))
            in_planes = planes * expansion
        self.blocks = nn.Sequential(*blocks)
        self.bn_final = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        he_initialize(self)

    def forward(self, x: Tensor) -> Tensor:
        features = self.blocks(self.bn1(self.conv1(x)))
        features = self.relu(self.bn_final(features))
        return self.fc(self.pool(features).flatten(1))
