"""The cost of a gradient-regularization step, finite differences against double backpropagation, measured side by
side in one process and recorded like a training run (``task=gr_cost``, configs/task/ in this folder).

The paper's efficiency claim (the finite-difference computation "reduces the computational cost of GR" [abstract])
is about the work per step, so every method's step (step.py, built from the run's own optimizer node with only
``method`` changed) trains the run's own network on the same fixed batches from the same weights: ``steps`` steps
per block, the methods' blocks interleaved in a rotated order for ``repetitions`` rounds after one warm-up round.
Each block's process CPU time per step is measured (on a shared machine it counts this process's work, not the
wait for a core); the record holds ``cost/<method>_cpu_s_per_step`` (medians over rounds) and the ratios
``cost/<a>_over_<b>`` (medians of the per-round ratios), in the single history row.
"""
from __future__ import annotations

import statistics
import time
from typing import Any

from omegaconf import DictConfig, open_dict

from optrepro import builders
from optrepro.errors import InvalidConfigError
from optrepro.optim.backend import LocalBackend
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import write_run_record
from reproductions.grad_reg.step import METHODS, build_gr_step

RATIOS = (("fd_forward", "double_backprop"), ("fd_backward", "double_backprop"), ("fd_forward", "none"),
          ("double_backprop", "none"))


def validate(cfg: DictConfig) -> None:
    task = cfg.task
    for key in ("repetitions", "steps", "batches"):
        value = task.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidConfigError(f"task.{key}", f"{value!r} is not a whole number >= 1",
                                     f"give a count, e.g. task.{key}=5")
    if cfg.optimizer.get("step") != "reproductions.grad_reg.step:build_gr_step":
        raise InvalidConfigError("optimizer", f"step {cfg.optimizer.get('step')!r} is not the GR step",
                                 "use optimizer=grad_reg (the methods are timed with its gamma and epsilon)")


def time_blocks(cfg: DictConfig, repetitions: int, steps: int, batches: int) -> dict[str, list[float]]:
    """CPU seconds per step of each method's blocks, one list per method (warm-up round left out)."""
    datamodule, data = builders.build_data(cfg)
    datamodule.place_on("cpu")
    net = builders.build_net(cfg, data)
    backend = LocalBackend(net)
    start = {key: value.clone() for key, value in net.state_dict().items()}
    size = int(cfg.train.batch_size)
    fixed = [(datamodule.to_input(datamodule.x_train[i * size:(i + 1) * size]),
              datamodule.y_train[i * size:(i + 1) * size], None) for i in range(batches)]
    strategies = {}
    for method in METHODS:
        node = cfg.optimizer.copy()
        with open_dict(node):
            node.method = method
        strategies[method] = build_gr_step(node, net, num_train_samples=data.num_train, num_classes=data.num_classes,
                                           accumulate=1, grad_clip=None)[1]
    seconds: dict[str, list[float]] = {method: [] for method in METHODS}
    for round_index in range(repetitions + 1):
        order = METHODS[round_index % len(METHODS):] + METHODS[:round_index % len(METHODS)]
        for method in order:
            net.load_state_dict(start)
            clock = time.process_time()
            for step in range(steps):
                strategies[method].training_step(backend, fixed[step % batches], epoch=0)
            if round_index > 0:
                seconds[method].append((time.process_time() - clock) / steps)
    return seconds


def cost_row(seconds: dict[str, list[float]]) -> dict[str, float]:
    row: dict[str, float] = {f"cost/{m}_cpu_s_per_step": statistics.median(v) for m, v in seconds.items()}
    for top, bottom in RATIOS:
        row[f"cost/{top}_over_{bottom}"] = statistics.median(a / b for a, b in zip(seconds[top], seconds[bottom]))
    return row


class GRCostTask:
    """`task._target_` of the gr_cost presets; the config check calls `validate` before any work."""

    validate = staticmethod(validate)

    def __init__(self, repetitions: int = 5, steps: int = 20, batches: int = 4) -> None:
        self.repetitions, self.steps, self.batches = repetitions, steps, batches

    def run(self, cfg: DictConfig) -> dict[str, Any]:
        validate(cfg)
        run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
        started_at, clock, code = utc_now(), time.perf_counter(), provenance.code_info()
        status, error, history, cpu = "finished", None, [], float("nan")
        try:
            cpu0 = time.process_time()
            seconds = time_blocks(cfg, self.repetitions, self.steps, self.batches)
            cpu = time.process_time() - cpu0
            history.append({"epoch": 0, "step": (self.repetitions + 1) * self.steps * len(METHODS),
                            **cost_row(seconds), "time/train_cpu_s": cpu})
        except BaseException as exc:
            status, error = failure_status(exc)
            raise
        finally:
            wall = time.perf_counter() - clock
            timing = {"wall_time_s": wall, "train_time_s": wall, "steps": history[0]["step"] if history else 0,
                      "time_per_step_s": float("nan"), "last_epoch_time_per_step_s": float("nan"),
                      "last_epoch_cpu_time_per_step_s": float("nan"), "samples_per_s": float("nan")}
            record = write_run_record(cfg, run_dir, status=status, error=error, history=history, timing=timing,
                                      device_names=provenance.device_names("cpu", 1), wandb=None,
                                      started_at=started_at, code=code, extra={"task": "gr_cost"})
        return record
