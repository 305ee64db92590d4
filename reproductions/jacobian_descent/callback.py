"""JDStatsCallback: the Jacobian descent step's per-step conflict measurements, summarised into the run history.

Preset node ``callbacks.jd_stats: {_target_: reproductions.jacobian_descent.callback.JDStatsCallback}``. Added to
each epoch's history row (see ``step.py`` for the per-step quantities):

* ``train/jd_worst_conflict``: max over the epoch's steps of max_i -cos(g_i, d);
* ``train/jd_worst_conflict_run``: the same over every step so far (the final metric of claim (a));
* ``train/jd_worst_scaled_conflict`` and ``_run``: the same for max_i -<g_i, d> / (max_j ||g_j|| ||d||);
* ``train/jd_conflict_frac``: mean over the epoch's steps of the share of rows in conflict with the update;
* ``train/jd_cos_to_mean``: mean over the epoch's steps of cos(update, mean gradient) (paper, Figure 2(b, d));
* ``train/loss_auc``: mean of the epochs' ``train/loss`` so far, the area under the training-loss curve per epoch
  (the paper's learning-rate selection criterion, Appendix D.1).

The module fills the epoch's row through ``complete_last_row`` right after writing it (``optrepro.lit.last_row``).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from optrepro.lit.last_row import LastRowCallback


def summarize(stats: list[torch.Tensor], run_worst: tuple[float, float]) -> dict[str, float]:
    table = torch.stack(stats).double().cpu()  # steps x [worst_conflict, conflict_frac, cos_to_mean, scaled]
    worst = float(table[:, 0].max())
    scaled = float(table[:, 3].max())
    return {
        "train/jd_worst_conflict": worst,
        "train/jd_worst_conflict_run": max(run_worst[0], worst),
        "train/jd_worst_scaled_conflict": scaled,
        "train/jd_worst_scaled_conflict_run": max(run_worst[1], scaled),
        "train/jd_conflict_frac": float(table[:, 1].mean()),
        "train/jd_cos_to_mean": float(table[:, 2].mean()),
    }


class JDStatsCallback(LastRowCallback):
    def __init__(self) -> None:
        self._run_worst = (-math.inf, -math.inf)

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        strategy = getattr(pl_module, "strategy", None)
        if strategy is None or not hasattr(strategy, "pop_epoch_stats") or not pl_module.history:
            return
        stats = strategy.pop_epoch_stats()
        if not stats:
            return
        summary = summarize(stats, self._run_worst)
        self._run_worst = (summary["train/jd_worst_conflict_run"], summary["train/jd_worst_scaled_conflict_run"])
        losses = [row["train/loss"] for row in pl_module.history if "train/loss" in row]
        summary["train/loss_auc"] = sum(losses) / len(losses)
        pl_module.add_to_last_history_row(summary)
