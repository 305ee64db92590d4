"""Preemption: a signal before the time limit stops training between batches, and the job requeues itself.

The run then resumes from `last.ckpt`, written at the end of every epoch (after the epoch's history row is
complete). Resuming from an epoch boundary (data order and augmentation are seeded per epoch) gives the same
final metrics as an uninterrupted run; a checkpoint taken mid-epoch would not, so none is written at the signal.

Two signals, one path: SIGUSR1 is what `sbatch --signal=USR1@90` sends (slurm/sweep.sbatch); SIGUSR2 is what the
submitit launcher asks for. Either one only sets a flag. Training stops at the next batch, the run writes its
`interrupted` record and closes W&B, and only then is the job requeued: by submitit's own handler when one was
installed, else by `scontrol requeue`; then the process exits, so that no launcher takes the attempt for the
job's result and the sweep keeps waiting for the requeued job. Requeuing first would let SLURM's SIGTERM kill the
W&B service mid-teardown, and the error of that teardown would end the sweep.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from optrepro.errors import OptreproError

log = logging.getLogger(__name__)
PREEMPTION_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
REQUEUED_EXIT_CODE = 255  # what submitit's own handler exits with after a requeue (sys.exit(-1))
REQUEUE_HOLD_NOTE = (
    "SLURM holds a requeued job about 2 minutes in PD (BeginTime) before it starts again; "
    "watch it with `squeue -j {job}`"
)


class Preempted(OptreproError):
    """Training stopped on a preemption signal; the run continues from its last epoch checkpoint."""


class PreemptionCallback(Callback):
    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Install the handlers before `Trainer.fit`, so Lightning chains, rather than replaces, them."""
        for signum in PREEMPTION_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum)

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        if self.received:
            raise Preempted(
                f"received {self.received.name}; stopped before batch "
                f"{trainer.fit_loop.epoch_loop.batch_idx} of epoch {trainer.current_epoch}"
            )

    def requeue(self, resumes_after_epoch: int | None) -> None:
        """Hand the job back to SLURM once the record is written: submitit's handler for its signal when there is
        one (it requeues and exits the process), else `scontrol requeue`."""
        if self.received is None:
            return
        job = slurm_job_to_requeue()
        resume = (
            "from the start (no epoch finished)"
            if resumes_after_epoch is None
            else f"from the end of epoch {resumes_after_epoch} (checkpoints/last.ckpt)"
        )
        if job is None:
            log.warning(
                "preempted outside SLURM: run the same command again in the same run folder (or with "
                "train.ckpt_path=<run folder>/checkpoints/last.ckpt) to resume %s",
                resume,
            )
            return
        log.warning(
            "preempted by %s: requeuing SLURM job %s; it resumes %s. %s",
            self.received.name,
            job,
            resume,
            REQUEUE_HOLD_NOTE.format(job=job),
        )
        handler = self._previous.get(self.received)
        if callable(handler):
            handler(int(self.received), None)  # submitit: checkpoint the call, requeue, exit
        requeue_slurm_job(job)
        # This attempt ends here, before a launcher (submitit) could take its `interrupted` record for the result.
        sys.exit(REQUEUED_EXIT_CODE)


def slurm_job_to_requeue() -> str | None:
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def requeue_slurm_job(job: str) -> None:
    """Ask SLURM to run this job again (same job id, so the same run folder)."""
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode != 0:
        log.error("scontrol requeue %s failed: %s", job, result.stderr.strip())
    else:
        log.info("requeued SLURM job %s", job)
