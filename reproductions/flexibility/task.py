"""`task=emc_search`: the effective model complexity of the preset's training procedure, as one run per seed.

For each n the search (search.py) asks for, a fresh model (same init for every n of a seed) trains on the first n
samples of one nested, class-balanced order of the training split (subsets.py) with the preset's model and
optimizer (trial.py); n is fitted when all n are classified correctly within `max_steps` steps. The record's
history has one row per trial (`emc/n`, `emc/fitted`, `emc/train_acc`, `emc/train_loss`, `emc/steps`), and its final
metrics `emc/samples` (the largest n fitted), `emc/first_unfitted`, `emc/params`, `emc/per_param` = emc/samples /
params, `emc/trials`, `emc/capped` (1 when every n up to the training split fitted). Knobs in the task node:
`start`, `max_steps`, `check_every`, `rel_tol`, `full_batch` (GD: every step on all n), `random_labels` (labels drawn
uniformly, seeded, independent of the inputs), `lr_schedule` (constant | cosine over max_steps, trial.py). The product's
scheduler must be constant (the trial decays the lr itself); augmentation is not applied (the
paper trains without it [secondary]).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import torch
from omegaconf import DictConfig

from optrepro.builders import instantiate_node
from optrepro.config_schema import Fraction, OpenSection, PosInt, check_section, choice
from optrepro.data.batches import InputTransform
from optrepro.data.registry import load_splits
from optrepro.data.splits import dataset_info
from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import build_optimizer
from optrepro.records import provenance
from optrepro.records.run_dir import make_run_dir
from optrepro.records.schema import failure_status, utc_now
from optrepro.train import solver_timing, write_solver_record
from reproductions.flexibility.search import largest_fitted
from reproductions.flexibility.subsets import balanced_order, random_labels
from reproductions.flexibility.trial import run_trial

SCHEDULES = ("constant", "cosine")


class EMCSearchKnobs(OpenSection):
    """The `task` node's knobs (configs/task/emc_search.yaml; its `_target_` passes on), typed once."""

    start: PosInt
    max_steps: PosInt
    check_every: PosInt
    rel_tol: Fraction  # the bisection stops when the bracket is at most rel_tol x the fitted n
    full_batch: bool
    random_labels: bool
    lr_schedule: Annotated[str, choice("reproductions.flexibility.task:SCHEDULES")]


def validate(cfg: DictConfig) -> None:
    check_section(cfg, "task", EMCSearchKnobs)
    if cfg.scheduler.name != "constant":
        raise InvalidConfigError(
            "scheduler",
            f"{cfg.scheduler.name!r}: a schedule over epochs has no meaning when each trial stops at its own step",
            "use scheduler=constant with task=emc_search",
        )


class EMCSearchTask:
    validate = staticmethod(validate)

    def __init__(
        self,
        start: int,
        max_steps: int,
        check_every: int,
        rel_tol: float,
        full_batch: bool,
        random_labels: bool,
        lr_schedule: str,
    ) -> None:
        self.start, self.max_steps, self.check_every, self.rel_tol = start, max_steps, check_every, rel_tol
        self.full_batch, self.random_labels, self.lr_schedule = full_batch, random_labels, lr_schedule

    def run(self, cfg: DictConfig) -> dict[str, Any]:
        validate(cfg)
        seed = int(cfg.seed)
        device = torch.device("cuda" if cfg.hardware.accelerator == "gpu" else "cpu")
        splits = load_splits(cfg.dataset, Path(cfg.paths.data_dir), seed=seed)
        num_classes, input_shape = dataset_info(splits)
        x = InputTransform(splits.mean, splits.std, splits.is_image, device)(splits.x_train.to(device))
        y = random_labels(len(splits.y_train), num_classes, seed) if self.random_labels else splits.y_train
        order = balanced_order(y, seed).to(device)
        y = y.to(device)
        run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
        started_at, clock, code, cpu0 = utc_now(), time.perf_counter(), provenance.code_info(cfg), time.process_time()
        status, error, history, steps = "finished", None, [], 0

        def build(n: int):
            torch.manual_seed(seed)  # the same initial weights for every n of this seed
            model = instantiate_node(cfg.model, "model", num_classes=num_classes, input_shape=input_shape).to(device)
            return (model, *build_optimizer(cfg.optimizer, model, num_train_samples=n, num_classes=num_classes))

        def fits(n: int) -> bool:
            nonlocal steps
            idx = order[:n]
            trial = run_trial(
                build,
                x[idx],
                y[idx],
                batch_size=None if self.full_batch else int(cfg.train.batch_size),
                max_steps=self.max_steps,
                check_every=self.check_every,
                seed=seed,
                schedule=self.lr_schedule,
            )
            steps += trial.steps
            history.append(
                {
                    "epoch": len(history),
                    "step": steps,
                    "emc/n": n,
                    "emc/fitted": float(trial.fitted),
                    "emc/train_acc": trial.train_acc,
                    "emc/train_loss": trial.train_loss,
                    "emc/steps": trial.steps,
                }
            )
            return trial.fitted

        try:
            result = largest_fitted(fits, start=min(self.start, len(order)), limit=len(order), rel_tol=self.rel_tol)
            params = sum(p.numel() for p in build(1)[0].parameters())
            history[-1].update(
                {
                    "emc/samples": result.emc,
                    "emc/params": params,
                    "emc/per_param": result.emc / params,
                    "emc/first_unfitted": result.first_unfitted or float("nan"),
                    "emc/trials": len(result.trials),
                    "emc/capped": float(result.capped),
                }
            )
        except BaseException as exc:
            status, error = failure_status(exc)
            raise
        finally:
            wall, cpu = time.perf_counter() - clock, time.process_time() - cpu0
            timing = solver_timing(wall, wall, cpu, steps)
            record = write_solver_record(
                cfg,
                run_dir,
                status=status,
                error=error,
                history=history,
                timing=timing,
                accelerator=str(cfg.hardware.accelerator),
                started_at=started_at,
                code=code,
                extra={"task": "emc_search"},
            )
        return record
