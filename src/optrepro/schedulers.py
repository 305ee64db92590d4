"""Learning-rate schedules as multipliers of the base LR, stepped once per optimizer step.

Schedules are defined in epochs (as papers state them) and converted to steps here, so a run's
schedule does not change when the batch size or device count changes the steps per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from omegaconf import DictConfig

from optrepro.errors import InvalidConfigError, UnknownChoiceError
from optrepro.paths import import_reproductions


def _warmup(factor: Callable[[int], float], warmup_steps: int) -> Callable[[int], float]:
    if warmup_steps <= 0:
        return factor
    return lambda step: (step + 1) / warmup_steps if step < warmup_steps else factor(step)


def _cosine(cfg: DictConfig, total_steps: int, base_lr: float, warmup_steps: int) -> Callable[[int], float]:
    floor = float(cfg.get("min_lr", 0.0)) / base_lr if base_lr else 0.0
    span = max(total_steps - warmup_steps, 1)
    return lambda step: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def _multistep(cfg: DictConfig, steps_per_epoch: int) -> Callable[[int], float]:
    milestones = sorted(int(m) * steps_per_epoch for m in cfg.milestones)
    gamma = float(cfg.gamma)
    return lambda step: gamma ** sum(step >= m for m in milestones)


SCHEDULES = ("constant", "cosine", "multistep")


def paper_schedule(target: str) -> Callable[..., Callable[[int], float]]:
    """A paper's schedule function, `scheduler._target_` (a dotted path, e.g.
    reproductions.lr_refinement.schedules.linear_decay): called like the product's with the scheduler node,
    `steps_per_epoch`, `epochs` and `base_lr`, it returns the LR multiplier of each step and checks its own keys."""
    from hydra.utils import get_object

    import_reproductions()
    try:
        return get_object(target)
    except Exception as exc:  # Hydra wraps import and attribute errors alike
        raise InvalidConfigError(
            "scheduler._target_",
            f"cannot import {target!r} ({type(exc).__name__})",
            "give a dotted path to a schedule function (reproductions.<paper>.<module>.<name>)",
        ) from None


def lr_multiplier(cfg: DictConfig, *, steps_per_epoch: int, epochs: int, base_lr: float) -> Callable[[int], float]:
    warmup_steps = int(cfg.get("warmup_epochs", 0) * steps_per_epoch)
    if cfg.get("_target_") is not None:
        factor = paper_schedule(cfg._target_)(cfg, steps_per_epoch=steps_per_epoch, epochs=epochs, base_lr=base_lr)
    elif cfg.name == "constant":

        def factor(step):
            return 1.0
    elif cfg.name == "cosine":
        factor = _cosine(cfg, steps_per_epoch * epochs, base_lr, warmup_steps)
    elif cfg.name == "multistep":
        factor = _multistep(cfg, steps_per_epoch)
    else:
        raise UnknownChoiceError("scheduler", cfg.name, SCHEDULES)
    return _warmup(factor, warmup_steps)


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int, epochs: int):
    """A LambdaLR on the optimizer; SAM-family wrappers alias the base optimizer's param groups, so it moves both."""
    base_lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(cfg, steps_per_epoch=steps_per_epoch, epochs=epochs, base_lr=base_lr)
    )
