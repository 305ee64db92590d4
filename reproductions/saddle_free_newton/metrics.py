"""KrylovStatsCallback: the full training-set loss and error, and the Krylov step's curvature numbers, in the record.

Node: ``callbacks.krylov_stats: {_target_: reproductions.saddle_free_newton.metrics.KrylovStatsCallback}``.
- ``train/full_error`` (percent) and ``train/full_loss``: the model evaluated on every training sample after the
  epoch's updates (the paper's figures report training error). ``train/loss`` of the loop is the running loss
  before each update, so it lags by one step.
- for saddle-free / damped Newton steps: ``sfn/min_ritz``, ``sfn/max_ritz``, ``sfn/negative_ritz`` (count of negative
  Ritz values) and ``sfn/damping`` of the epoch's last step, and ``sfn/min_ritz_min_run`` (the most negative Ritz
  value seen in the run) and ``sfn/neg_curvature_ratio`` (|most negative Ritz value| of the latest step over that of
  the first step: below 1 when the run has left the strongly negatively curved region it started in).
Rows are written after the callbacks' epoch hooks, so the newest row is completed when the next epoch starts and
when training ends.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from optrepro.lit.last_row import LastRowCallback


class KrylovStatsCallback(LastRowCallback):
    def __init__(self) -> None:
        self._done_rows: set[int] = set()
        self._min_ritz_run = math.inf

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.history or len(pl_module.history) in self._done_rows:
            return
        self._done_rows.add(len(pl_module.history))
        values = full_train_metrics(trainer, pl_module)
        stats = getattr(pl_module.strategy, "last_stats", None) or {}
        for key in ("min_ritz", "max_ritz", "negative_ritz", "damping"):
            if key in stats:
                values[f"sfn/{key}"] = float(stats[key])
        for row in getattr(pl_module.strategy, "stats", []):
            if math.isfinite(row.get("min_ritz", math.nan)):
                self._min_ritz_run = min(self._min_ritz_run, row["min_ritz"])
        if math.isfinite(self._min_ritz_run):
            values["sfn/min_ritz_min_run"] = self._min_ritz_run
        ratio = negative_curvature_ratio(getattr(pl_module.strategy, "stats", []))
        if ratio is not None:
            values["sfn/neg_curvature_ratio"] = ratio
        pl_module.add_to_last_history_row(values)


def negative_curvature_ratio(stats: list[dict[str, float]]) -> float | None:
    """|most negative Ritz value| of the latest step over that of the first step (0 when the latest has none);
    None without a first step with negative curvature."""
    finite = [row["min_ritz"] for row in stats if math.isfinite(row.get("min_ritz", math.nan))]
    if not finite or finite[0] >= 0:
        return None
    return max(0.0, -finite[-1]) / -finite[0]


@torch.no_grad()
def full_train_metrics(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
    loader = trainer.train_dataloader
    if loader is None:
        return {}
    was_training = pl_module.training
    pl_module.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for inputs, targets, *_ in loader:
        inputs, targets = inputs.to(pl_module.device), targets.to(pl_module.device)
        logits = pl_module(inputs)
        loss_sum += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == targets).sum())
        count += targets.numel()
    pl_module.train(was_training)
    if count == 0:
        return {}
    return {"train/full_loss": loss_sum / count, "train/full_error": 100.0 * (1.0 - correct / count)}
