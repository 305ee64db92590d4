"""GradNormCallback: the global gradient norm of every training step, summarised into the run history; preset node
``callbacks.grad_norm: {_target_: reproductions.rnn_clipping.grad_norm.GradNormCallback}``.

The norm is measured after each backward pass and before any clipping (``train.grad_clip`` clips later, in the
step strategy), so a clipped run still shows the norms its raw gradients reached: the exploding-gradient
evidence of Pascanu et al. (ICML 2013, Section 2). Added to each epoch's history row:

* ``train/grad_norm_max``, ``train/grad_norm_median``: over the epoch's steps;
* ``train/grad_norm_max_run``: over every step so far (the final metric: the largest norm of the run);
* ``train/grad_norm_first_median``: the median of the first epoch, kept in every row (the "typical" norm that
  the exploding steps are compared with);
* ``train/grad_norm_log10_max_run``: log10 of the run max: norms spread over decades, so seeds are averaged on
  this scale (a difference of 1 between two settings is a 10x larger largest norm).

A non-finite norm counts as +inf (it is the largest norm there is). The module fills the epoch's row through
``complete_last_row`` right after writing it (``optrepro.lit.last_row``).
Assumes one backward per step (``train.accumulate: 1``, one-pass optimizers such as SGD).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

from optrepro.lit.last_row import LastRowCallback


def global_grad_norm(parameters) -> float:
    """sqrt of the sum of squared gradient entries over all parameters with a gradient (+inf if not finite)."""
    squares = [p.grad.detach().double().pow(2).sum() for p in parameters if p.grad is not None]
    if not squares:
        return 0.0
    norm = float(torch.stack(squares).sum().sqrt())
    return norm if math.isfinite(norm) else math.inf


def norm_summary(norms: list[float], run_max: float, first_median: float | None) -> dict[str, float]:
    """The history fields of one epoch's step norms (module docstring); `first_median` None: this is the first epoch."""
    ordered = sorted(norms)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
    first_median = median if first_median is None else first_median
    return {
        "train/grad_norm_max": ordered[-1],
        "train/grad_norm_median": median,
        "train/grad_norm_max_run": run_max,
        "train/grad_norm_first_median": first_median,
        "train/grad_norm_log10_max_run": math.log10(run_max) if run_max > 0 else -math.inf,
    }


class GradNormCallback(LastRowCallback):
    def __init__(self) -> None:
        self._norms: list[float] = []
        self._run_max = -math.inf
        self._first_median: float | None = None

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._norms.append(global_grad_norm(pl_module.parameters()))

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._norms or not pl_module.history:
            return
        self._run_max = max(self._run_max, max(self._norms))
        summary = norm_summary(self._norms, self._run_max, self._first_median)
        self._first_median = summary["train/grad_norm_first_median"]
        pl_module.add_to_last_history_row(summary)
        self._norms = []
