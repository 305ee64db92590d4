"""Any timm architecture as a classifier, with errors that say what to do offline.

timm's own failures are unhelpful in our setting: an unknown name raises a bare RuntimeError, and
pretrained weights on an offline compute node retry the Hugging Face Hub for about a minute before
failing with a generic cache message.
"""

import difflib

import timm
from torch import nn

from optrepro.errors import OptreproError


class UnknownTimmModelError(OptreproError, ValueError):
    """The name is not a timm architecture; the message lists close matches."""


class PretrainedWeightsUnavailableError(OptreproError, OSError):
    """Pretrained weights are neither cached nor downloadable; the message says how to get them."""


def close_timm_names(name: str, count: int = 8) -> list[str]:
    """timm architectures whose names look like `name` (spelling first, then substring matches)."""
    known = timm.list_models()
    matches = difflib.get_close_matches(name, known, n=count, cutoff=0.6)
    stem = name.split(".")[0].strip("_-").lower()
    if stem:
        matches += [candidate for candidate in known if stem in candidate and candidate not in matches]
    return matches[:count]


def create_timm_model(name: str, num_classes: int, in_channels: int, pretrained: bool = False) -> nn.Module:
    """timm.create_model with our class count and input channels; clear errors for bad names and offline weights."""
    if not timm.is_model(name):
        suggestions = close_timm_names(name)
        hint = f"close matches: {', '.join(suggestions)}" if suggestions else "no close matches"
        raise UnknownTimmModelError(
            f"unknown timm model {name!r}; {hint}. "
            f"List all with: python -c \"import timm; print(timm.list_models('*{name.split('.')[0]}*'))\". "
            "The CIFAR WideResNet/ResNet/PyramidNet are model presets of their own (e.g. model=wrn28_10)."
        )
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels)
    except OSError as error:
        if not pretrained:
            raise
        raise PretrainedWeightsUnavailableError(
            f"could not load pretrained weights for timm model {name!r}: they are not in the Hugging Face "
            "cache and the Hub is unreachable. Fix: on a machine with network run "
            f'python -c "import timm; timm.create_model({name!r}, pretrained=True)" with the same HF_HOME '
            "(set HF_HOME to shared storage and HF_HUB_OFFLINE=1 on compute nodes so offline runs fail fast), "
            "or set model.pretrained=false."
        ) from error
