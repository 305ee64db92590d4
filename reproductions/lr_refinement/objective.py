"""FinalObjective: the training objective at the last iterate, the quantity the paper's convex theory bounds.

Preset node ``callbacks.final_objective: {_target_: reproductions.lr_refinement.objective.FinalObjective}``. When
training ends it evaluates the model on the whole training split (eval mode, no gradient) and adds to the last
history row ``train/last_loss`` (mean cross-entropy) and ``train/objective`` (that plus the L2 penalty
(wd / 2) * ||w||^2 that torch's coupled weight decay minimises, per parameter group). The epoch's ``train/loss`` is
instead the mean over the epoch's mini-batches, taken while the weights moved. One process.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

EVAL_BATCH = 4096


def l2_penalty(optimizer: torch.optim.Optimizer) -> float:
    """sum over parameter groups of (wd / 2) * ||w||^2."""
    total = 0.0
    for group in optimizer.param_groups:
        decay = float(group.get("weight_decay", 0.0))
        if decay:
            total += 0.5 * decay * sum(float(p.detach().double().pow(2).sum()) for p in group["params"])
    return total


@torch.no_grad()
def mean_loss(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, to_input) -> float:
    total = 0.0
    for start in range(0, len(targets), EVAL_BATCH):
        logits = model(to_input(inputs[start : start + EVAL_BATCH]))
        total += float(F.cross_entropy(logits.double(), targets[start : start + EVAL_BATCH], reduction="sum"))
    return total / len(targets)


class FinalObjective(Callback):
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.history:
            return
        data = trainer.datamodule
        was_training = pl_module.training
        pl_module.eval()
        loss = mean_loss(pl_module, data.x_train, data.y_train, data.to_input)
        pl_module.train(was_training)
        pl_module.add_to_last_history_row(
            {"train/last_loss": loss, "train/objective": loss + l2_penalty(trainer.optimizers[0])}
        )
