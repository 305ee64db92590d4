"""How a run shows its progress: a live bar with loss and accuracy on a terminal, one line per epoch otherwise.

A SLURM job's stdout is a file: a progress bar there is either absent or a wall of carriage returns, so without
a terminal each finished epoch prints one plain line (epoch, train loss/acc, test loss/error, time). A module
without an accuracy (reproductions/samformer's forecasts) names the metrics its line shows instead in a
`progress_metrics` attribute (names under the evaluation split, e.g. ("mse", "mae")).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, RichProgressBar


def epoch_line(
    row: Mapping[str, Any],
    max_epochs: int | None,
    previous_train_s: float,
    elapsed_s: float,
    metrics: tuple[str, ...] = (),
) -> str:
    """One history row as a log line, e.g.
    `epoch 3/30  train loss 0.4123 acc 85.21%  test loss 0.3982 error 13.45%  1.2 s/epoch  (4.8 s)`.
    Accuracy and error appear when the row has them (a forecast has neither); `metrics` names more evaluation
    metrics of the split to show after its loss (a module's `progress_metrics`, e.g. a forecast's ("mse", "mae"))."""
    total = f"/{max_epochs}" if max_epochs else ""
    train = f"train loss {_value(row.get('train/loss'))}"
    if "train/acc" in row:
        train += f" acc {_percent(row['train/acc'])}"
    parts = [f"epoch {int(row['epoch']) + 1}{total}", train]
    split = "val" if "val/loss" in row else "test"
    if f"{split}/loss" in row:
        shown = f"{split} loss {_value(row[f'{split}/loss'])}"
        shown += "".join(f" {name} {_value(row[f'{split}/{name}'])}" for name in metrics if f"{split}/{name}" in row)
        if f"{split}/error" in row:
            shown += f" error {_value(row[f'{split}/error'], '.2f')}%"
        parts.append(shown)
    else:
        parts.append("test -")
    train_s = row.get("time/train_s")
    if isinstance(train_s, (int, float)):
        parts.append(f"{train_s - previous_train_s:.1f} s train")
    parts.append(f"({_clock(elapsed_s)} elapsed)")
    return "  ".join(parts)


def _value(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if isinstance(value, (int, float)) and math.isfinite(value) else str(value)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochLines(Callback):
    """Prints each epoch's history row once, on rank 0. The module appends the row after the callbacks'
    `on_train_epoch_end`, so a row is printed at the next epoch's start, and the last one when training ends.
    Epochs shorter than `quiet_s` without a test evaluation are left out between lines, so a 2000-epoch toy run
    does not print 2000 lines; every epoch of a real job (longer than that) prints."""

    def __init__(self, stream: TextIO | None = None, quiet_s: float = 10.0) -> None:
        self.stream = stream
        self.quiet_s = quiet_s
        self._printed = 0
        self._started = self._last_line = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._printed = len(getattr(pl_module, "history", []))  # rows restored from a checkpoint were shown before
        self._started = self._last_line = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_new_rows(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._print_new_rows(trainer, pl_module, last=True)

    def _print_new_rows(self, trainer: pl.Trainer, pl_module: pl.LightningModule, last: bool = False) -> None:
        history = getattr(pl_module, "history", [])
        now = time.perf_counter()
        for index in range(self._printed, len(history)):
            row = history[index]
            due = (
                "test/loss" in row
                or "val/loss" in row
                or now - self._last_line >= self.quiet_s
                or (last and index == len(history) - 1)
            )
            if due and trainer.is_global_zero:
                before = history[index - 1].get("time/train_s", 0.0) if index else 0.0
                metrics = tuple(getattr(pl_module, "progress_metrics", ()))
                print(
                    epoch_line(row, trainer.max_epochs, before, now - self._started, metrics),
                    file=self.stream or sys.stdout,
                    flush=True,
                )
                self._last_line = now
        self._printed = len(history)


class LossAccProgressBar(RichProgressBar):
    """Rich's bar showing the epoch's running train loss and accuracy and the last test error (not `v_num`)."""

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        progress = getattr(pl_module, "progress_bar_values", None)
        return progress() if progress is not None else {}


def progress_callback(stdout: TextIO | None = None) -> Callback:
    """The bar on a terminal, epoch lines otherwise (every SLURM job)."""
    return LossAccProgressBar() if (stdout or sys.stdout).isatty() else EpochLines()
