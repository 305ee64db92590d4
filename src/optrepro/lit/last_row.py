"""LastRowCallback: a callback whose per-epoch values belong in the epoch's history row.

ClassifierModule appends the epoch's row in its own `on_train_epoch_end`, which Lightning calls after the other
callbacks' `on_train_epoch_end` (where they measure) and before the checkpoint callback's; right after appending
the row, the module calls `complete_last_row` of every LastRowCallback, so the epoch checkpoint holds whole rows
(through `ClassifierModule.add_to_last_history_row`, which also logs the values).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class LastRowCallback(Callback, ABC):
    """Completes `pl_module.history[-1]` once per finished epoch (called by ClassifierModule)."""

    @abstractmethod
    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Add this callback's values for the finished epoch to `pl_module.history[-1]` (nothing if none)."""
