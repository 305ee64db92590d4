"""CautiousStatsCallback: per epoch, the share of decayed coordinates the mask kept active and the weight norm.

Preset node ``callbacks.cwd_stats: {_target_: reproductions.cautious_wd.callback.CautiousStatsCallback}``. Adds to
each history row (so to the run record): ``train/cwd_mask_frac`` (active / all coordinates of the tensors with
lambda > 0, over the epoch's steps; NaN for an optimizer without a mask, e.g. plain AdamW) and ``train/weight_norm``
(the l2 norm of all parameters at the end of the epoch: the paper's Figures 11 and 13 compare it across lambda).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from optrepro.lit.last_row import LastRowCallback
from reproductions.cautious_wd.optimizer import CautiousWeightDecay

MASK_KEY = "train/cwd_mask_frac"
NORM_KEY = "train/weight_norm"


def weight_norm(module: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(torch.linalg.vector_norm(torch.stack([p.detach().norm() for p in module.parameters()])))


class CautiousStatsCallback(LastRowCallback):
    """Fills ``MASK_KEY`` and ``NORM_KEY`` of the newest history row."""

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", None)
        if not history or NORM_KEY in history[-1] or not trainer.optimizers:
            return
        optimizer = trainer.optimizers[0]
        fraction = math.nan
        if isinstance(optimizer, CautiousWeightDecay):
            active, total = optimizer.mask_counts()
            fraction = active / total if total else math.nan
        pl_module.add_to_last_history_row({MASK_KEY: fraction, NORM_KEY: weight_norm(pl_module)})
