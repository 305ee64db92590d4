"""LastRowCallback: a callback whose per-epoch values belong in the epoch's history row.

ClassifierModule appends the epoch's row in its own `on_train_epoch_end`, which Lightning calls after the
callbacks' `on_train_epoch_end`; so a callback completes the row when the next epoch starts and, for the last
epoch, when training ends (through `ClassifierModule.add_to_last_history_row`, which also logs the values).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class LastRowCallback(Callback, ABC):
    """Calls `complete_last_row` once per finished epoch, after the epoch's row exists."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.complete_last_row(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.complete_last_row(trainer, pl_module)

    @abstractmethod
    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Add this callback's values for the finished epoch to `pl_module.history[-1]` (nothing if none)."""
