"""The paper's 2-D toy objectives (Figure 3; Section 2): where Adam, AdamW and Adam + CWD end, as a recorded run.

``task: {_target_: reproductions.cautious_wd.toy.ToyTask, objective, steps, init_low, init_high, log_every}``;
the optimizer is the run's ``optimizer`` node (so AdamW, Adam with lambda = 0, and ``optimizer=adamw_cwd`` are
the same code as on Fashion-MNIST), on one 2-vector parameter, full (exact) gradients, constant lr.

Objectives [paper, Figure 3 caption]: ``circle`` f = ((x-3)^2 + (y-3)^2 - 1)^2, whose minimizers are the circle of
radius 1 around (3, 3); ``parabola`` f = (y - 3 - (x-3)^2)^2, minimizers y = 3 + (x-3)^2. The theory (Section 2.2):
AdamW's fixed points solve the box-constrained problem |x|, |y| <= 1/lambda, so with 1/lambda below every minimizer's
larger coordinate it cannot end on the set; CWD ends on the minimizer set, then slides toward a point whose
magnitudes cannot all shrink along the set (locally Pareto optimal). ``toy/pareto_gap`` is the distance to the part
of the set that is Pareto optimal for (|x|, |y|) and reachable by shrinking from the start region used here:
the circle's arc facing the origin (x <= 3, y <= 3) and the parabola's left branch 0 <= x <= 3.

The start is drawn uniformly in [init_low, init_high] (2-vectors) from the run seed, so seeds differ by start.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal

import numpy as np
import torch
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import PosInt, Section, Text, check_section
from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import build_optimizer
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import solver_timing, write_solver_record
from reproductions.cautious_wd.optimizer import CautiousWeightDecay

OBJECTIVES = ("circle", "parabola")
INIT_STREAM = 0x701  # the start point's own random stream of the run seed


def objective_value(name: str, z: torch.Tensor) -> torch.Tensor:
    x, y = z[0], z[1]
    if name == "circle":
        return ((x - 3) ** 2 + (y - 3) ** 2 - 1) ** 2
    return (y - 3 - (x - 3) ** 2) ** 2


def pareto_points(name: str, n: int = 200001) -> np.ndarray:
    """Dense samples of the Pareto-optimal part of the minimizer set (module docstring)."""
    if name == "circle":
        theta = np.linspace(0.0, math.pi / 2, n)
        return np.stack([3 - np.cos(theta), 3 - np.sin(theta)], axis=1)
    x = np.linspace(0.0, 3.0, n)
    return np.stack([x, 3 + (x - 3) ** 2], axis=1)


def pareto_gap(name: str, point: np.ndarray) -> float:
    return float(np.min(np.linalg.norm(pareto_points(name) - point, axis=1)))


class ToyKnobs(Section):
    """The task node (values: configs/task/cwd_toy.yaml, cwd_toy_parabola.yaml)."""

    target: Text = Field(alias="_target_")
    objective: Literal[OBJECTIVES]
    steps: PosInt
    log_every: PosInt
    init_low: Annotated[list[float], Field(min_length=2, max_length=2)]  # the start region's corners (x, y)
    init_high: Annotated[list[float], Field(min_length=2, max_length=2)]


def validate(cfg: DictConfig) -> DictConfig:
    """The task node's knobs, checked before any work (the config check calls it: ToyTask.validate)."""
    check_section(cfg, "task", ToyKnobs)
    tc = cfg.task
    if any(lo > hi for lo, hi in zip(tc.init_low, tc.init_high)):
        raise InvalidConfigError(
            "task.init_low", "is above task.init_high", "give init_low <= init_high per coordinate"
        )
    return tc


class Point(torch.nn.Module):
    """The toy's parameter (x, y) as a module, so the run's optimizer node builds on it as on a network."""

    def __init__(self, start: np.ndarray) -> None:
        super().__init__()
        self.z = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))


def start_point(seed: int, low, high) -> np.ndarray:
    return np.random.default_rng([int(seed), INIT_STREAM]).uniform(list(low), list(high))


def optimize(cfg: DictConfig) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Run the optimizer on the objective; (history rows every log_every steps, final metrics)."""
    tc = validate(cfg)
    point = Point(start_point(int(cfg.seed), tc.init_low, tc.init_high))
    optimizer, _ = build_optimizer(cfg.optimizer, point, num_train_samples=1, num_classes=1)
    steps = min(int(tc.steps), int(cfg.limits.train_batches or tc.steps))
    history = []
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        value = objective_value(str(tc.objective), point.z)
        value.backward()
        optimizer.step()
        if step % int(tc.log_every) == 0 or step == steps:
            z = point.z.detach()
            history.append(
                {
                    "epoch": len(history),
                    "step": step,
                    "toy/f": float(objective_value(tc.objective, z)),
                    "toy/x": float(z[0]),
                    "toy/y": float(z[1]),
                }
            )
    z = point.z.detach().numpy()
    final = {
        "toy/f_final": history[-1]["toy/f"],
        "toy/pareto_gap": pareto_gap(str(tc.objective), z),
        "toy/norm": float(np.linalg.norm(z)),
        "toy/max_abs": float(np.abs(z).max()),
    }
    if isinstance(optimizer, CautiousWeightDecay):
        active, total = optimizer.mask_counts()
        final["toy/mask_frac"] = active / total
    return history, final


class ToyTask:
    """``task._target_`` of the toy presets; the config check calls ``validate`` before any work. Hydra builds it
    with the task node's knobs as arguments; ``run`` reads them from the config it is given (the same values)."""

    validate = staticmethod(validate)

    def __init__(self, **knobs: Any) -> None:
        del knobs  # read from cfg.task in run(), after validate()

    def run(self, cfg: DictConfig) -> dict[str, Any]:
        run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
        started_at, clock, code = utc_now(), time.perf_counter(), provenance.code_info(cfg)
        status, error, history, wall, cpu = "finished", None, [], math.nan, math.nan
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            history, final = optimize(cfg)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            history[-1].update(final)
            history[-1].update({"time/train_s": wall, "time/train_cpu_s": cpu})
            if not math.isfinite(final["toy/f_final"]):
                status, error = "diverged", "the objective became NaN or infinite"
        except BaseException as exc:
            status, error = failure_status(exc)
            raise
        finally:
            steps = int(history[-1]["step"]) if history else 0
            timing = solver_timing(time.perf_counter() - clock, wall, cpu, steps)
            record = write_solver_record(
                cfg,
                run_dir,
                status=status,
                error=error,
                history=history,
                timing=timing,
                started_at=started_at,
                code=code,
                extra={"task": "cautious_wd_toy", "objective": str(cfg.task.objective)},
            )
        return record
