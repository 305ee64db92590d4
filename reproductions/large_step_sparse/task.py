"""The diagonal-linear-network task: one (seed, schedule) run of dln.py, recorded like a training run.

`task=diag_net` (configs/task/diag_net.yaml); its knobs live in the task node and are checked by `validate` before
any work (the config check calls it). SGD at batch 1 for 10^5 iterations is a NumPy loop of a few seconds, so it does
not go through Lightning; the run gets the product's run folder, provenance and record writer, as notears_topo's
structure-learning task does. The seed draws the data (stream 0) and the SGD sample order (stream 1), so every
schedule of one seed sees the same data and the same samples.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import numpy as np
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import PosFloat, PosInt, Section, Text, check_section, choice
from optrepro.errors import InvalidConfigError
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import solver_timing, write_solver_record
from reproductions.large_step_sparse.dln import make_problem, train

ALGORITHMS = ("sgd", "gd")


class DiagNetKnobs(Section):
    """The task node (configs/task/diag_net.yaml), typed once; the defaults are the notebook's."""

    target: Text = Field(alias="_target_")
    n: PosInt  # training points
    d: PosInt  # dimension
    r: PosInt  # nonzero coordinates of beta*
    n_test: PosInt
    algorithm: Annotated[str, choice("reproductions.large_step_sparse.task:ALGORITHMS")]
    lr: PosFloat
    decay_at: Annotated[float, Field(gt=0, lt=1)] | None = None  # share of the iterations at the large step
    decay_factor: PosFloat = 1.0
    init_scale: PosFloat
    iterations: PosInt
    log_every: PosInt


def validate(cfg: DictConfig) -> DictConfig:
    """The task node typed by DiagNetKnobs before any work, then the rule that ties r to d."""
    knobs = check_section(cfg, "task", DiagNetKnobs)
    if knobs.r > knobs.d:
        raise InvalidConfigError("task.r", f"{knobs.r} nonzero coordinates do not fit in d = {knobs.d}", "set r <= d")
    return cfg.task


class DiagonalNetTask:
    """`task._target_` of the large_step_sparse presets."""

    validate = staticmethod(validate)

    def __init__(self, **_: Any) -> None:
        """The knobs are read from cfg.task in `run` (checked by `validate` first)."""

    def run(self, cfg: DictConfig) -> dict[str, Any]:
        tc = validate(cfg)
        run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
        started_at, clock, code = utc_now(), time.perf_counter(), provenance.code_info(cfg)
        status, error, history, wall, cpu = "finished", None, [], float("nan"), float("nan")
        try:
            seed = int(cfg.seed)
            problem = make_problem(np.random.default_rng([seed, 0]), int(tc.n), int(tc.d), int(tc.r), int(tc.n_test))
            wall0, cpu0 = time.perf_counter(), time.process_time()
            history = train(
                problem,
                np.random.default_rng([seed, 1]),
                algorithm=str(tc.algorithm),
                lr=float(tc.lr),
                iterations=int(tc.iterations),
                decay_at=tc.get("decay_at"),
                decay_factor=float(tc.decay_factor),
                init_scale=float(tc.init_scale),
                log_every=int(tc.log_every),
            )
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            if not all(math.isfinite(history[-1][k]) for k in ("train/loss", "test/loss")):
                status, error = "diverged", "the training loss became NaN or infinite; the run was stopped"
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
                extra={"task": "diag_net"},
            )
        return record
