"""`optimizer.step: reproductions.super_consistency.step:build_scaled_sgd_step`: plain SGD whose lr is the base lr
eta_0 (`optimizer.base.lr`) times the model's `lr_multiplier` (N under muP, 1 under NTP and SP; parametrisation.py).

The paper's muP runs use SGD with lr eta_0 * N on raw N(0, 1) weights [repo: MuSGD]; a preset then names the same
eta_0 at every width, which is what "the best learning rate transfers" compares.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn
from torch.optim import Optimizer

from optrepro.errors import InvalidConfigError
from optrepro.optim.backend import StepStrategy
from optrepro.optim.factory import build_base_optimizer
from optrepro.optim.standard import StandardStep


def build_scaled_sgd_step(
    cfg: DictConfig,
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int,
    grad_clip: float | None,
) -> tuple[Optimizer, StepStrategy]:
    multiplier = getattr(model, "lr_multiplier", None)
    if multiplier is None:
        raise InvalidConfigError(
            "optimizer.step",
            f"{type(model).__name__} has no lr_multiplier",
            "use model=scaled_mlp or model=scaled_convnet (reproductions/super_consistency)",
        )
    optimizer = build_base_optimizer(cfg, model)
    scale_learning_rate(optimizer, float(multiplier))
    return optimizer, StandardStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


def scale_learning_rate(optimizer: Optimizer, multiplier: float) -> None:
    """Every group's lr times `multiplier`, before a scheduler reads it as its initial lr."""
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * multiplier
