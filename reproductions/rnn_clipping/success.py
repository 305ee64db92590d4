"""SolvedCallback: the paper's per-run success criterion as a metric; preset node
``callbacks.solved: {_target_: reproductions.rnn_clipping.success.SolvedCallback, max_error_pct: 1.0}``.

Pascanu et al. (ICML 2013, Section 4.1.1, p. 7) count a run as successful "if the number of misclassified sequences
was under 1% out of 10000 freshly random generated sequences". Every history row that has ``test/error`` (percent)
gets ``test/solved`` = 1.0 if it is below ``max_error_pct``, else 0.0; the mean of the final ``test/solved`` over
seeds is the success rate of the paper's Figure 7. Rows are written after the callbacks' epoch hooks, so the newest
row is marked when the next epoch starts, when training ends, and after the final evaluation that follows fit.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

SOLVED_KEY = "test/solved"


def solved(test_error_pct: float, max_error_pct: float) -> float:
    """1.0 when the test error (percent) is under the threshold, else 0.0 (NaN errors count as failures)."""
    return 1.0 if test_error_pct < max_error_pct else 0.0


class SolvedCallback(Callback):
    def __init__(self, max_error_pct: float = 1.0) -> None:
        self.max_error_pct = float(max_error_pct)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark_last_row(pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mark_last_row(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._mark_last_row(pl_module)

    def _mark_last_row(self, pl_module: pl.LightningModule) -> None:
        if pl_module.history and "test/error" in pl_module.history[-1]:
            pl_module.add_to_last_history_row({SOLVED_KEY: solved(pl_module.history[-1]["test/error"], self.max_error_pct)})
