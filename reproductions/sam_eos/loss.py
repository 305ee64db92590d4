"""Squared error on one-hot targets, the official image-classification loss (sam_edge image_classification.py:
``optax.squared_error(logits, one_hot(y))`` averaged over the batch *and* the 10 outputs, no factor 1/2).

The mean over outputs scales the Hessian and the gradient alike (by 1/K), so lambda_max and the SAM-edge stay
comparable as long as both come from this one loss (the callback uses the run's training loss for both).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from optrepro.errors import InvalidConfigError


class SquaredOneHot:
    """mean over samples and classes of (output - one_hot(label))^2."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if label_smoothing:
            raise InvalidConfigError(
                "train.label_smoothing",
                f"{label_smoothing} has no meaning for the squared loss on one-hot targets",
                "set train.label_smoothing=0",
            )

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        one_hot = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
        return (outputs - one_hot).pow(2).mean()
