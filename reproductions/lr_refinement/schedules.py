"""Linear decay and the refined schedule of Defazio, Cutkosky, Mehta, Mishchenko (arXiv 2310.07831), as LR multipliers.

Both are `scheduler._target_` functions (optrepro.schedulers.lr_multiplier): called with the scheduler node, the
run's steps per epoch and epochs, they return the multiplier of the base LR at each optimizer step (0-based).

* linear decay: (T - 1 - t) / (T - 1) over the T steps of the run, 1 at the first step and 0 at the last, the
  closed-form refinement of constant gradient norms (so the two agree exactly when the norms are flat);
* refined: from a previous run's per-step gradient norms G_1..G_n (recorded by grad_norms.GradNormRecorder), the
  weights w_t = G_t^-p (p = 2 for SGD-type problems, `weighting: l2`; p = 1 with l1 norms for Adam-type ones,
  `weighting: l1`) give eta_t = w_t * sum_{s>t} w_s, with eta_n = 0, divided by its maximum; the norms are smoothed
  first by a median filter of width ~tau * resolution (the official README's right-only reflect padding) and the
  schedule is interpolated to the run's own step count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from pydantic import Field
from scipy.ndimage import median_filter

from optrepro.config_schema import Fraction, NonNegInt, Section, Text, check_node, choice
from optrepro.errors import InvalidConfigError

WEIGHTINGS = {"l2": 2.0, "l1": 1.0}  # exponent p of w_t = G_t^-p


class LinearDecayKnobs(Section):
    """The `scheduler` node of linear_decay (configs/scheduler/linear_decay.yaml), typed once."""

    target: Text = Field(alias="_target_")
    name: Text | None = None
    warmup_epochs: NonNegInt | None = None


class RefinedKnobs(LinearDecayKnobs):
    """The `scheduler` node of refined (configs/scheduler/refined_digits.yaml); the defaults are refined's."""

    norms: list[Any] | None = None  # a previous run's per-step gradient norms: checked by _checked_refined_options
    weighting: Annotated[str, choice("reproductions.lr_refinement.schedules:WEIGHTINGS")]
    tau: Fraction  # the median filter's width as a fraction of the run (0: no filter)
    trim: NonNegInt  # steps dropped at each end of the recorded sequence
    resolution: Annotated[int, Field(ge=2)]  # points the schedule is computed on
    source: Text | None = None


def closed_form(norms: Sequence[float], power: float) -> np.ndarray:
    """eta_t = w_t * sum_{s>t} w_s with w = norms^-power (eta_n = 0), divided by its maximum."""
    weights = np.asarray(norms, dtype=np.float64) ** -power
    tail = np.cumsum(weights[::-1])[::-1]  # tail[t] = sum_{s>=t} w_s
    schedule = np.append(weights[:-1] * tail[1:], 0.0)
    return schedule / schedule.max() if schedule.max() > 0 else np.ones_like(schedule)


def resample(values: np.ndarray, points: int) -> np.ndarray:
    """Linear interpolation of `values` (taken as evenly spaced over [0, 1]) at `points` evenly spaced positions."""
    return np.interp(np.linspace(0.0, 1.0, points), np.linspace(0.0, 1.0, len(values)), values)


def smooth(norms: np.ndarray, tau: float, resolution: int) -> np.ndarray:
    """Median filter of odd width 2 * floor(tau * resolution / 2) + 1; the end of the run is padded by reflection
    (twice the width) so the last steps are not flattened toward the run's first values."""
    width = 2 * (int(tau * resolution) // 2) + 1
    if width == 1:
        return norms
    pad = 2 * width
    return median_filter(np.pad(norms, (0, pad), mode="reflect"), size=width, mode="nearest")[:-pad]


def refined_schedule(
    norms: Sequence[float], *, weighting: str = "l2", tau: float = 0.1, trim: int = 2, resolution: int = 10_000
) -> np.ndarray:
    """The refined schedule on `resolution` points (or on the raw length, if longer) from recorded norms:
    non-finite norms and `trim` steps at each end dropped, upsampled to `resolution`, smoothed, closed form."""
    values = np.asarray(norms, dtype=np.float64)
    values = values[np.isfinite(values)]
    if trim:
        values = values[trim:-trim]
    if len(values) < resolution:
        values = resample(values, resolution)
    return closed_form(smooth(values, tau, resolution), WEIGHTINGS[weighting])


def _check_keys(cfg: DictConfig, schema: type[Section], **defaults) -> Section:
    """The node typed by its schema (the function's defaults for keys not given): one line, key, problem, fix."""
    node = {**defaults, **OmegaConf.to_container(cfg, resolve=True)}
    return check_node(node, "scheduler", schema)


def _total_steps(steps_per_epoch: int, epochs: int) -> int:
    return max(int(steps_per_epoch) * int(epochs), 1)


def linear_decay(cfg: DictConfig, *, steps_per_epoch: int, epochs: int, base_lr: float) -> Callable[[int], float]:
    """(T - 1 - t) / (T - 1): from the base LR at the first step to 0 at the last."""
    _check_keys(cfg, LinearDecayKnobs)
    last = _total_steps(steps_per_epoch, epochs) - 1
    return lambda step: max(last - step, 0) / last if last > 0 else 1.0


def _checked_refined_options(cfg: DictConfig) -> dict:
    knobs = _check_keys(cfg, RefinedKnobs, weighting="l2", tau=0.1, trim=2, resolution=10_000)
    norms = cfg.get("norms")
    fix = (
        "record a run with callbacks.grad_norms (reproductions/lr_refinement/grad_norms.py), then write its norms "
        "with python -m reproductions.lr_refinement.export_norms"
    )
    if norms is None or len(norms) < 8:
        raise InvalidConfigError("scheduler.norms", "needs a previous run's per-step gradient norms (8 or more)", fix)
    values = np.asarray(list(norms), dtype=np.float64)
    if not np.all(values[np.isfinite(values)] > 0) or np.isfinite(values).sum() < 8:
        raise InvalidConfigError("scheduler.norms", "holds a norm <= 0 or fewer than 8 finite norms", fix)
    options = {"weighting": knobs.weighting, "tau": knobs.tau, "trim": knobs.trim, "resolution": knobs.resolution}
    if np.isfinite(values).sum() - 2 * options["trim"] < 2:
        raise InvalidConfigError(
            "scheduler.trim",
            f"{options['trim']} leaves fewer than 2 norms",
            "give the steps dropped at each end, 0 or more (2: the official code's)",
        )
    return {"norms": values, **options}


def refined(cfg: DictConfig, *, steps_per_epoch: int, epochs: int, base_lr: float) -> Callable[[int], float]:
    """The refined schedule of `scheduler.norms`, interpolated to this run's steps (last step 0)."""
    options = _checked_refined_options(cfg)
    schedule = refined_schedule(options.pop("norms"), **options)
    values = resample(schedule, _total_steps(steps_per_epoch, epochs)).tolist()
    return lambda step: values[min(step, len(values) - 1)]
