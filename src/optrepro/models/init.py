"""He initialisation shared by the CIFAR architectures.

The WRN, ResNet and PyramidNet papers all initialise convolutions with He et al. (2015) normal init
(fan-out, ReLU gain) and BatchNorm as the identity; training recipes assume this starting point.
"""

from torch import nn


def he_initialize(model: nn.Module) -> None:
    """Apply He-normal (fan-out) to convolutions, identity to BatchNorm, zero to linear biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
