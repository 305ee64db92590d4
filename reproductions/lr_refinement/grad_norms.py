"""GradNormRecorder: the per-step gradient norms a refined schedule is built from, written beside the run's record.

Preset node ``callbacks.grad_norms: {_target_: reproductions.lr_refinement.grad_norms.GradNormRecorder}``. After each
backward pass it measures the gradient the optimizer is about to use, g + wd * w (torch's coupled weight decay is
added inside ``step()``, so it is added here from each parameter group's ``weight_decay``), in the l2 norm (SGD-type
weights) and the l1 norm (Adam-type weights). When training ends the sequences go to ``<run folder>/grad_norms.json``
({"format": 1, "l2": [...], "l1": [...]}); ``export_norms`` turns them into a scheduler config. Assumes one backward
per optimizer step (the standard step, ``train.accumulate: 1``) and one process.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

NORMS_FILE = "grad_norms.json"


def update_norms(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """(l2, l1) norms of g + wd * w over every parameter with a gradient."""
    squares, absolutes = [], []
    for group in optimizer.param_groups:
        decay = float(group.get("weight_decay", 0.0))
        for param in group["params"]:
            if param.grad is None:
                continue
            update = param.grad.detach().double()
            if decay:
                update = update + decay * param.detach().double()
            squares.append(update.pow(2).sum())
            absolutes.append(update.abs().sum())
    if not squares:
        return 0.0, 0.0
    return float(torch.stack(squares).sum().sqrt()), float(torch.stack(absolutes).sum())


class GradNormRecorder(Callback):
    def __init__(self) -> None:
        self.l2: list[float] = []
        self.l1: list[float] = []

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        l2, l1 = update_norms(trainer.optimizers[0])
        self.l2.append(l2)
        self.l1.append(l1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / NORMS_FILE
            path.write_text(json.dumps({"format": 1, "l2": self.l2, "l1": self.l1}))
