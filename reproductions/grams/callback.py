"""LossAUCCallback: ``train/loss_auc``, the mean of the epoch training losses so far (the area under the
training-loss curve per epoch), added to each history row. It measures descent speed over the whole run, the
quantity the Grams paper's loss curves compare; the final row's value is the run's. Preset node
``callbacks.loss_auc: {_target_: reproductions.grams.callback.LossAUCCallback}``.
"""

from __future__ import annotations

import lightning.pytorch as pl

from optrepro.lit.last_row import LastRowCallback

AUC_KEY = "train/loss_auc"


def loss_auc(history: list[dict]) -> float:
    losses = [row["train/loss"] for row in history]
    return sum(losses) / len(losses)


class LossAUCCallback(LastRowCallback):
    """Fills ``AUC_KEY`` of the newest history row."""

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", None)
        if history and AUC_KEY not in history[-1]:
            pl_module.add_to_last_history_row({AUC_KEY: loss_auc(history)})
