"""Model factories with one call signature, the targets of `configs/model/*.yaml`.

The builder calls `hydra.utils.instantiate(cfg.model, num_classes=K, input_shape=shape)` for every
model, so each factory takes `name` (the config's preset name; only timm uses it to pick the
architecture, the others record it and ignore it), `num_classes`, `input_shape` ((C, H, W) for
images, (D,) for vectors) and its architecture parameters as keywords.
"""

from collections.abc import Sequence

from torch import nn

from optrepro.errors import ConfigError
from optrepro.models.cifar_resnet import cifar_resnet18, he_cifar_resnet
from optrepro.models.mlp import MLP
from optrepro.models.pyramidnet import PyramidNet
from optrepro.models.small_cnn import SmallCNN
from optrepro.models.timm_adapter import create_timm_model
from optrepro.models.wide_resnet import WideResNet


def image_channels(input_shape: Sequence[int], name: str) -> int:
    """Channel count of an image input; convolutional models cannot take vectors."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"model {name!r} takes images shaped (C, H, W), but the dataset gives input_shape="
            f"{tuple(input_shape)}; use model=mlp for vector data."
        )
    return int(input_shape[0])


def mlp_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    hidden: Sequence[int] = (256, 256),
    batch_norm: bool = False,
    bias: bool = True,
) -> nn.Module:
    """MLP over the flattened input; works for any input shape."""
    return MLP(num_classes, tuple(input_shape), tuple(hidden), batch_norm, bias)


def small_cnn_model(name: str, num_classes: int, input_shape: Sequence[int], width: int = 32) -> nn.Module:
    """SmallCNN for 8x8 to 32x32 images."""
    return SmallCNN(num_classes, image_channels(input_shape, name), width)


def wide_resnet_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    depth: int,
    widen_factor: int,
    dropout: float = 0.0,
) -> nn.Module:
    """WRN-depth-widen_factor (e.g. 28-10, 16-8)."""
    return WideResNet(depth, widen_factor, num_classes, image_channels(input_shape, name), dropout)


def resnet18_model(name: str, num_classes: int, input_shape: Sequence[int]) -> nn.Module:
    """The CIFAR ResNet-18 (3x3 stem, no max-pool)."""
    return cifar_resnet18(num_classes, image_channels(input_shape, name))


def he_resnet_model(
    name: str, num_classes: int, input_shape: Sequence[int], depth: int, skip: bool = True
) -> nn.Module:
    """He et al. (2016) CIFAR ResNet-(6n+2), option A shortcuts (ResNet-20/32/56/110); skip=False removes them."""
    return he_cifar_resnet(depth, num_classes, image_channels(input_shape, name), skip)


def pyramidnet_model(
    name: str,
    num_classes: int,
    input_shape: Sequence[int],
    depth: int,
    alpha: float,
    bottleneck: bool,
) -> nn.Module:
    """PyramidNet-depth (alpha), basic or bottleneck blocks."""
    return PyramidNet(depth, alpha, bottleneck, num_classes, image_channels(input_shape, name))


def timm_model(name: str, num_classes: int, input_shape: Sequence[int], pretrained: bool = False) -> nn.Module:
    """The timm architecture called `name` (e.g. resnet50, vit_small_patch16_224)."""
    return create_timm_model(name, num_classes, image_channels(input_shape, name), pretrained)
