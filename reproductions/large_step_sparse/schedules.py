"""The official deep-net step-size schedule (tml-epfl/sgd-sparse-features, deep_nets/utils_train.py
`piecewise_0Xepochs` [repo]) as an LR multiplier: `scheduler._target_` (optrepro.schedulers.lr_multiplier).

With t = (step + 1) / steps_per_epoch the fraction of epochs done after the step (the official loop sets the step
of iteration i of epoch e from e + (i + 1) / len(batches)) and p = `large_fraction` of the run:

* t / epochs < p: the large step, multiplier 1 (or warmup_exp ** (100 t / epochs) with an exponential warmup);
* p <= t / epochs < 0.9: (p / 0.5) / 10 of it (warmup_exp ** (100 p) / 10 with a warmup);
* from 0.9 on: (p / 0.5) / 100 (warmup_exp ** (100 p) / 100).

The p / 0.5 factor is the official code's (its interpolation toward the value at half the run, with warmup_factor
1): the step after the decay is 0.02 of the large step at p = 0.1, 0.06 at p = 0.3 and 0.1 at p = 0.5, not 0.1 in
every case. The exponent 100 t / epochs is the official one too (percent of the run, one per epoch at 100 epochs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from omegaconf import DictConfig, OmegaConf
from pydantic import Field

from optrepro.config_schema import NonNegInt, Section, Text, check_node
from optrepro.errors import InvalidConfigError

LAST_DECAY_AT = 0.9  # the official schedules divide by 10 again at 90% of the run


class PiecewiseKnobs(Section):
    """The `scheduler` node of piecewise_large_step (configs/scheduler/lss_piecewise.yaml), typed once."""

    target: Text = Field(alias="_target_")
    name: Text | None = None
    warmup_epochs: NonNegInt | None = None
    large_fraction: Annotated[float, Field(gt=0, lt=LAST_DECAY_AT)]  # the share of the run at the large step
    warmup_exp: float  # 1.0: no warmup; > 1: the official exponential warmup's base


def large_step_multiplier(t_fraction: float, large_fraction: float, warmup_exp: float) -> float:
    """The multiplier of the base LR when `t_fraction` of the run is done (see the module docstring)."""
    if warmup_exp > 1.0:
        peak = warmup_exp ** (100 * large_fraction)
        if t_fraction < large_fraction:
            return warmup_exp ** (100 * t_fraction)
    else:
        peak = large_fraction / 0.5
        if t_fraction < large_fraction:
            return 1.0
    return peak / 10 if t_fraction < LAST_DECAY_AT else peak / 100


def _checked(cfg: DictConfig) -> tuple[float, float]:
    node = {"warmup_exp": 1.0, **OmegaConf.to_container(cfg, resolve=True)}
    knobs = check_node(node, "scheduler", PiecewiseKnobs)
    fraction, warmup_exp = knobs.large_fraction, knobs.warmup_exp
    if warmup_exp < 1.0:
        raise InvalidConfigError(
            "scheduler.warmup_exp",
            f"{warmup_exp} < 1 (the official power-law warmup is not implemented)",
            "give 1.0 (no warmup) or an exponential base > 1, e.g. 1.05",
        )
    return float(fraction), float(warmup_exp)


def piecewise_large_step(
    cfg: DictConfig, *, steps_per_epoch: int, epochs: int, base_lr: float
) -> Callable[[int], float]:
    """The multiplier of each optimizer step (0-based) of a run of `epochs` epochs."""
    fraction, warmup_exp = _checked(cfg)
    per_epoch, total = max(int(steps_per_epoch), 1), max(int(epochs), 1)
    return lambda step: large_step_multiplier((step + 1) / per_epoch / total, fraction, warmup_exp)
