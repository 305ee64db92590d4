"""Model zoo: CIFAR architectures from the SAM-family papers, CPU-tier models, and timm.

Configs target the factories (uniform `name, num_classes, input_shape, **architecture` signature);
the classes are exported for direct use in tests and notebooks.
"""

from optrepro.models.cifar_resnet import CifarResNet, cifar_resnet18, he_cifar_resnet
from optrepro.models.factories import (
    he_resnet_model,
    mlp_model,
    pyramidnet_model,
    resnet18_model,
    small_cnn_model,
    timm_model,
    wide_resnet_model,
)
from optrepro.models.mlp import MLP
from optrepro.models.pyramidnet import PyramidNet
from optrepro.models.small_cnn import SmallCNN
from optrepro.models.timm_adapter import (
    PretrainedWeightsUnavailableError,
    UnknownTimmModelError,
    create_timm_model,
)
from optrepro.models.wide_resnet import WideResNet

__all__ = [
    "MLP",
    "CifarResNet",
    "PretrainedWeightsUnavailableError",
    "PyramidNet",
    "SmallCNN",
    "UnknownTimmModelError",
    "WideResNet",
    "cifar_resnet18",
    "create_timm_model",
    "he_cifar_resnet",
    "he_resnet_model",
    "mlp_model",
    "pyramidnet_model",
    "resnet18_model",
    "small_cnn_model",
    "timm_model",
    "wide_resnet_model",
]
