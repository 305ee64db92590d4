"""WeightBoundCallback: how far the weights are from Lion's constraint set, once per epoch; preset node
``callbacks.weight_bound: {_target_: reproductions.lion_k.weight_bound.WeightBoundCallback}``.

Lion-K with decoupled weight decay lambda drives every decayed tensor into ``lambda * ||x||_dual <= 1`` and keeps
it there (Chen et al., ICLR 2024, arXiv 2310.05898). Two numbers are added to each history row of the run record:

* ``train/max_abs_weight_times_lambda``: max over the parameters whose group has ``weight_decay > 0`` of
  ``weight_decay * max|x|`` (the l_inf box of sign-Lion; defined for any decoupled-decay optimizer);
* ``train/weight_bound``: the same with the norm of the optimizer's own constraint set when its param groups
  name a Lion-K ``k`` (l_inf for l1, l_2 for l2, l_1 for linf; per tensor), else equal to the first.

Both are NaN when no parameter has weight decay. The values are measured on the weights at the end of each
epoch: the module calls ``complete_last_row`` right after writing the epoch's history row
(``optrepro.lit.last_row``). The fields reach ``record.json`` through ``module.history``.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer

from optrepro.lit.last_row import LastRowCallback
from optrepro.optim.lion import dual_norm

MAX_ABS_KEY = "train/max_abs_weight_times_lambda"
BOUND_KEY = "train/weight_bound"


def weight_bound_metrics(optimizer: Optimizer) -> dict[str, float]:
    """``{MAX_ABS_KEY, BOUND_KEY}`` for the optimizer's param groups (see the module docstring)."""
    max_abs, bound = -math.inf, -math.inf
    for group in optimizer.param_groups:
        wd = float(group.get("weight_decay", 0.0) or 0.0)
        if wd <= 0.0:
            continue
        k = group.get("k")
        for p in group["params"]:
            if p.numel() == 0:
                continue
            with torch.no_grad():
                linf = wd * float(p.detach().abs().max())
                own = wd * float(dual_norm(p, k)) if k is not None else linf
            max_abs, bound = max(max_abs, linf), max(bound, own)
    if max_abs == -math.inf:
        return {MAX_ABS_KEY: math.nan, BOUND_KEY: math.nan}
    return {MAX_ABS_KEY: max_abs, BOUND_KEY: bound}


class WeightBoundCallback(LastRowCallback):
    """Adds :func:`weight_bound_metrics` of the epoch-end weights to the module's newest history row."""

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", None)
        if not history or MAX_ABS_KEY in history[-1] or not trainer.optimizers:
            return
        pl_module.add_to_last_history_row(weight_bound_metrics(trainer.optimizers[0]))
