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
from typing import Any

import numpy as np
from omegaconf import DictConfig

from optrepro.errors import InvalidConfigError
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import solver_timing, write_solver_record
from reproductions.large_step_sparse.dln import make_problem, train

ALGORITHMS = ("sgd", "gd")
COUNTS = ("n", "d", "r", "n_test", "iterations", "log_every")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(cfg: DictConfig) -> DictConfig:
    """The task node's knobs: one-line errors naming the key."""
    tc = cfg.task
    for key in COUNTS:
        value = tc.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidConfigError(f"task.{key}", f"{value!r} is not an integer >= 1", "give a whole number >= 1")
    if tc.r > tc.d:
        raise InvalidConfigError("task.r", f"{tc.r} nonzero coordinates do not fit in d = {tc.d}", "set r <= d")
    if tc.algorithm not in ALGORITHMS:
        raise InvalidConfigError(
            "task.algorithm", f"{tc.algorithm!r} is not one of the choices", f"allowed: {', '.join(ALGORITHMS)}"
        )
    for key in ("lr", "decay_factor", "init_scale"):
        if not (_number(tc.get(key)) and tc.get(key) > 0):
            raise InvalidConfigError(f"task.{key}", f"{tc.get(key)!r} is not a number > 0", "give a positive number")
    decay_at = tc.get("decay_at")
    if decay_at is not None and not (_number(decay_at) and 0 < decay_at < 1):
        raise InvalidConfigError(
            "task.decay_at",
            f"{decay_at!r} is not a fraction in (0, 1)",
            "give the share of the iterations at the large step, e.g. 0.5, or null",
        )
    return tc


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
