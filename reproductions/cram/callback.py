"""One-shot pruning test at the end of training, for any run: preset node
``callbacks.one_shot_pruning: {_target_: reproductions.cram.callback.OneShotPruningCallback, sparsities: [0.7, 0.9]}``.

For each sparsity ``s`` a copy of the trained network is pruned in one shot by global magnitude (the operator of
``reproductions/cram/pruning.py``), its BatchNorm statistics are re-estimated on ``bn_batches`` training batches
(``bn_retune: true``; the paper's "BNT"), and it is evaluated on the test split. The trained network itself is
not changed, so the run's own ``test/acc`` stays the dense accuracy. Added to the last history row (so to
``record.metrics.final``), with ``NN = round(100 * s)``:

* ``test/acc_pruned_sNN``: test accuracy of the pruned network after BN re-tuning (the claim metric);
* ``test/acc_pruned_nobnt_sNN``: the same before re-tuning;
* ``prune/sparsity_sNN``: the fraction of prunable weights that are zero after pruning (a check: about s; exactly
  ``ceil(n * (1 - s))`` of the ``n`` are kept).

The re-tuning batches are one epoch of the run's own training batches (same batch size and augmentation) in the
order of the epoch after the last trained one (a fixed function of the seed). Under DDP each rank re-tunes on its
shard and the test counts are summed over ranks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from reproductions.cram.pruning import (
    check_sparsity,
    prunable_parameters,
    prune_global_magnitude,
    retune_batchnorm,
)


def sparsity_tag(sparsity: float) -> str:
    return f"s{round(100 * sparsity)}"


@torch.no_grad()
def count_correct(model: nn.Module, batches) -> tuple[float, float]:
    model.eval()
    correct, total = 0.0, 0.0
    for inputs, targets, *_ in batches:
        logits = model(inputs)
        correct += float((logits.argmax(dim=-1) == targets).sum())
        total += float(targets.numel())
    return correct, total


class OneShotPruningCallback(Callback):
    def __init__(self, sparsities: Sequence[float], bn_batches: int = 100, bn_retune: bool = True) -> None:
        if isinstance(sparsities, (int, float)) or len(sparsities) == 0:
            raise ValueError(f"callbacks.one_shot_pruning.sparsities must be a non-empty list, got {sparsities!r}")
        self.sparsities = [
            check_sparsity(s, name=f"one_shot_pruning.sparsities[{i}]") for i, s in enumerate(sparsities)
        ]
        tags = [sparsity_tag(s) for s in self.sparsities]
        if len(set(tags)) != len(tags):
            raise ValueError(f"one_shot_pruning.sparsities {list(sparsities)} name the same percentage twice")
        if bn_batches < 1:
            raise ValueError(f"one_shot_pruning.bn_batches must be >= 1, got {bn_batches}")
        self.bn_batches, self.bn_retune = int(bn_batches), bool(bn_retune)

    def measure(self, net: nn.Module, train_batches, eval_batches, reduce=lambda values: values) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for sparsity in self.sparsities:
            tag = sparsity_tag(sparsity)
            pruned = copy.deepcopy(net)
            masks = prune_global_magnitude(pruned, sparsity)
            zeros = sum(float((p == 0).sum()) for p in prunable_parameters(pruned))
            metrics[f"prune/sparsity_{tag}"] = zeros / sum(m.numel() for m in masks)
            correct, total = reduce(count_correct(pruned, eval_batches()))
            metrics[f"test/acc_pruned_nobnt_{tag}"] = correct / max(total, 1.0)
            if self.bn_retune:
                retune_batchnorm(pruned, (inputs for inputs, *_ in train_batches()), self.bn_batches)
                correct, total = reduce(count_correct(pruned, eval_batches()))
            metrics[f"test/acc_pruned_{tag}"] = correct / max(total, 1.0)
        return metrics

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not getattr(pl_module, "history", None) or getattr(pl_module, "diverged", False):
            return
        datamodule = trainer.datamodule
        train_loader = datamodule.train_dataloader()
        epoch = trainer.fit_loop.epoch_progress.current.processed
        was_training = pl_module.net.training

        def reduce(values: tuple[float, float]) -> tuple[float, float]:
            summed = trainer.strategy.reduce(torch.tensor(values, device=pl_module.device), reduce_op="sum")
            return tuple(summed.tolist())

        metrics = self.measure(
            pl_module.net,
            train_batches=lambda: train_loader.epoch_batches(epoch),
            eval_batches=datamodule.val_dataloader,
            reduce=reduce,
        )
        pl_module.net.train(was_training)
        pl_module.add_to_last_history_row(metrics)
