"""One run: data, model, fit, evaluate, and a run record whatever happens (finished, failed, diverged)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf

from optrepro import builders, run_summary, tracking
from optrepro.config import config_hash
from optrepro.config_schema import validate_config
from optrepro.lit.preemption import Preempted, PreemptionCallback
from optrepro.lit.quiet import silence_third_party_noise
from optrepro.records import provenance
from optrepro.records.lookup import finished_run
from optrepro.records.recipe import current_recipe
from optrepro.records.record import read_record
from optrepro.records.run_dir import RUN_DIR_ENV, make_run_dir
from optrepro.records.schema import build_record, failure_status, utc_now
from optrepro.records.writer import write_record

log = logging.getLogger("optrepro")


def process_rank() -> int:
    """Global rank before the trainer exists (Lightning's launcher and SLURM both set one of these)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


@contextmanager
def shared_run_dir(run_dir: Path) -> Iterator[None]:
    """Let DDP workers that Lightning starts from this process write into rank 0's run folder."""
    previous = os.environ.get(RUN_DIR_ENV)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_DIR_ENV, None)
        else:
            os.environ[RUN_DIR_ENV] = previous


def set_cpu_threads(cfg: DictConfig) -> None:
    """Concurrent jobs on one node must not each spin up a thread per core (2 cores, 2 jobs: 10x slower steps)."""
    threads = cfg.hardware.get("cpu_threads") or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads:
        torch.set_num_threads(int(threads))


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> str | None:
    """An explicit ckpt_path, else the run folder's last.ckpt (a requeued or restarted job continues)."""
    if cfg.train.ckpt_path:
        return str(cfg.train.ckpt_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.exists() else None


def last_epoch_time_per_step(history: list[dict[str, float]], clock: str = "time/train_s") -> float:
    """Time per step of the final epoch alone: methods that switch an extra term on mid-run (SAF, MESA from
    epoch E_start) are then timed with it on, not averaged with their plain-SGD epochs."""
    if not history or clock not in history[-1]:
        return float("nan")
    if len(history) < 2:
        return history[0][clock] / history[0]["step"] if history[0]["step"] else float("nan")
    last, before = history[-1], history[-2]
    steps = last["step"] - before["step"]
    return (last[clock] - before[clock]) / steps if steps else float("nan")


def timing_info(module, wall_time_s: float, global_batch: int, earlier: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall-clock figures, plus the last epoch's process CPU time per step: on a CPU machine shared with other
    jobs that one measures the method's own cost (the cpu tier's timing claims use it); on a GPU it does not.
    A resumed run's wall time adds up every attempt (`attempts`, one entry each, `earlier` being those before
    this one); its train time is restored from the checkpoint, so it counts each kept epoch once."""
    steps = module.global_step if module is not None else 0
    train_time = module.train_time_s if module is not None else 0.0
    history = module.history if module is not None else []
    this_attempt = {
        "attempt": len(earlier),
        "wall_time_s": wall_time_s,
        "resumed_after_epoch": module.resumed_after_epoch if module is not None else None,
    }
    attempts = [*earlier, this_attempt]
    return {
        "wall_time_s": sum(a["wall_time_s"] for a in attempts),
        "train_time_s": train_time,
        "steps": steps,
        "time_per_step_s": train_time / steps if steps else float("nan"),
        "last_epoch_time_per_step_s": last_epoch_time_per_step(history),
        "last_epoch_cpu_time_per_step_s": last_epoch_time_per_step(history, clock="time/train_cpu_s"),
        "samples_per_s": steps * global_batch / train_time if train_time else float("nan"),
        "attempts": attempts,
    }


def solver_timing(wall_time_s: float, train_time_s: float, train_cpu_s: float, steps: int) -> dict[str, float]:
    """The timing block of a run that trains outside Lightning (a paper's own task: a solver, a NumPy loop, a
    search): no epochs, so its last-epoch figures are the whole run's."""
    per_step = train_time_s / max(steps, 1)
    return {
        "wall_time_s": wall_time_s,
        "train_time_s": train_time_s,
        "steps": steps,
        "time_per_step_s": per_step,
        "last_epoch_time_per_step_s": per_step,
        "last_epoch_cpu_time_per_step_s": train_cpu_s / max(steps, 1),
        "samples_per_s": float("nan"),
    }


def write_solver_record(
    cfg: DictConfig, run_dir: Path, *, timing: dict[str, float], accelerator: str = "cpu", **fields: Any
) -> dict[str, Any]:
    """write_run_record for a task that trains outside Lightning (solver_timing): one process, no W&B run."""
    devices = provenance.device_names(accelerator, 1)
    return write_run_record(cfg, run_dir, timing=timing, device_names=devices, wandb=None, **fields)


def earlier_attempts(run_dir: Path) -> list[dict[str, Any]]:
    """The attempts an interrupted record in this run folder already counts (a requeued job's earlier lives)."""
    record = read_record(run_dir) if (run_dir / "record.json").exists() else None
    if not record or record.get("status") != "interrupted":
        return []
    timing = record.get("timing") or {}
    return list(
        timing.get("attempts")
        or [{"attempt": 0, "wall_time_s": timing.get("wall_time_s", 0.0), "resumed_after_epoch": None}]
    )


def write_run_record(
    cfg: DictConfig, run_dir: Path, *, metrics_files: list | None = None, **fields: Any
) -> dict[str, Any]:
    """Every task ends here: the record (build_record's fields) written into the run folder, then the run summary."""
    record = build_record(cfg, run_id=run_dir.name, recipe=current_recipe(), **fields)
    path = write_record(run_dir, record)
    run_summary.print_run_summary(
        record, path, metrics_files=metrics_files or [], record_roots=run_summary.summary_roots(cfg.paths.runs_dir)
    )
    return record


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Run one setting with the task of its `task` node; returns the record on rank 0 (None on other ranks)."""
    validate_config(cfg)  # every key typed and range-checked, the rules across keys: before any work
    silence_third_party_noise()
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    set_cpu_threads(cfg)
    task = builders.build_task(cfg)
    if cfg.get("skip_finished", True):
        hardware = OmegaConf.to_container(cfg.hardware, resolve=True)
        done = finished_run(cfg.paths.runs_dir, config_hash(cfg), current_recipe(), int(cfg.seed), hardware)
        if done is not None:
            log.info("already finished: %s (same command); set skip_finished=false to run it again", done)
            record = read_record(done)
            run_summary.print_run_summary(
                record, done / "record.json", record_roots=run_summary.summary_roots(cfg.paths.runs_dir)
            )
            return record
    return task.run(cfg)


class ClassificationTask:
    """The product's default task (configs/task/classification.yaml): fit a classifier, evaluate, record."""

    def run(self, cfg: DictConfig) -> dict[str, Any] | None:
        datamodule, data = self.build_data(cfg)  # missing data stops the run before it has a folder
        run_dir = make_run_dir(cfg.paths.runs_dir, str(cfg.name))
        is_rank_zero = process_rank() == 0
        started_at, clock, code = utc_now(), time.perf_counter(), provenance.code_info(cfg)
        earlier = earlier_attempts(run_dir)
        loggers, module, trainer = [], None, None
        preemption = PreemptionCallback()
        status, error = "finished", None
        try:
            loggers = tracking.build_loggers(cfg, run_dir, is_global_zero=is_rank_zero, code=code)
            module = self.build_module(cfg, builders.build_net(cfg, data), data)
            callbacks = [preemption, *builders.build_callbacks(cfg, run_dir)]
            trainer = builders.build_trainer(cfg, run_dir, loggers, callbacks)
            preemption.install()
            with shared_run_dir(run_dir):
                trainer.fit(module, datamodule=datamodule, ckpt_path=resume_checkpoint(cfg, run_dir))
                last_row = module.history[-1] if module.history else {}
                if not module.diverged and f"{module.eval_split}/acc" not in last_row:
                    trainer.validate(module, datamodule=datamodule, verbose=False)
            if module.diverged:
                status, error = "diverged", "the training loss became NaN or infinite; the run was stopped"
            elif trainer.interrupted:
                status, error = "interrupted", "training was interrupted before its last epoch"
        except Preempted as exc:
            status, error = "interrupted", str(exc)
        except BaseException as exc:
            status, error = failure_status(exc)
            raise
        finally:
            record = None
            if trainer.is_global_zero if trainer is not None else is_rank_zero:
                record = write_run_record(
                    cfg,
                    run_dir,
                    metrics_files=tracking.metrics_files(loggers),
                    status=status,
                    error=error,
                    history=module.history if module is not None else [],
                    timing=timing_info(module, time.perf_counter() - clock, int(cfg.train.batch_size), earlier),
                    device_names=provenance.device_names(cfg.hardware.accelerator, int(cfg.hardware.devices)),
                    wandb=tracking.wandb_info(loggers),
                    started_at=started_at,
                    code=code,
                    extra=self.record_extra(data),
                )
            preemption.uninstall()
            tracking.finish_wandb(loggers)
        if status == "interrupted" and is_rank_zero:
            preemption.requeue(module.history[-1]["epoch"] if module is not None and module.history else None)
        return record

    def build_data(self, cfg: DictConfig):
        """(datamodule, DataInfo) the run trains on; a paper's task may subclass this one to change the training
        distribution before the network is built (reproductions/useful/task.py: upsample the slow-learnable
        examples an early run finds)."""
        return builders.build_data(cfg)

    def record_extra(self, data) -> dict[str, Any]:
        """The record's `extra` block; a paper's task may add facts of its run (reproductions/useful/task.py: the
        training samples of its grown epoch, `train_samples`, which the full-tier test counts steps from)."""
        return {"noisy_label_fraction": data.noisy_label_fraction}

    def build_module(self, cfg: DictConfig, net, data):
        """The LightningModule that trains `net`; a paper's task may subclass this one to bring its own module (its
        metrics), keeping the rest of the run (reproductions/rnn_clipping/regression.py: the addition problem)."""
        return builders.build_module(cfg, net, data)
