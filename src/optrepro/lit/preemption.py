"""Preemption: a signal before the time limit stops training between batches, and the job requeues itself.

The run then resumes from `last.ckpt`, written at the end of every epoch. Resuming from an epoch boundary
(data order and augmentation are seeded per epoch) gives the same final metrics as an uninterrupted run;
a checkpoint taken mid-epoch would not, so none is written at the signal.
SIGUSR1 is what `sbatch --signal=USR1@90` sends (slurm/sweep.sbatch). Under the submitit launcher, submitit
handles its own USR2 (requeue, then SystemExit), which ends the run as `interrupted` the same way.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from optrepro.errors import OptreproError

log = logging.getLogger(__name__)
PREEMPTION_SIGNALS = (signal.SIGUSR1,)


class Preempted(OptreproError):
    """Training stopped on a preemption signal; the run continues from its last epoch checkpoint."""


class PreemptionCallback(Callback):
    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Install the handlers before `Trainer.fit`, so Lightning chains, rather than replaces, them."""
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if self.received:
            raise Preempted(f"received {self.received}; stopped before batch {trainer.fit_loop.epoch_loop.batch_idx} "
                            f"of epoch {trainer.current_epoch}")


def slurm_job_to_requeue() -> str | None:
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def requeue_slurm_job() -> None:
    """Ask SLURM to run this job again (same job id, so the same run folder); outside SLURM, say how to resume."""
    job = slurm_job_to_requeue()
    if job is None:
        log.warning("preempted outside SLURM: run the same command with train.ckpt_path=<run folder>/checkpoints/last.ckpt to resume")
        return
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode != 0:
        log.error("scontrol requeue %s failed: %s", job, result.stderr.strip())
    else:
        log.info("requeued SLURM job %s; it resumes from the last epoch checkpoint", job)
