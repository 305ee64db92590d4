"""One-shot pruning at the end of training, M-FAC or magnitude: preset node ``callbacks.mfac_pruning``.

``{_target_: reproductions.mfac.prune_callback.OneShotPruningCallback, method: mfac, sparsities: [0.5, 0.7, 0.9],
ngrads: 64, damp: 1.0e-5, blocksize: 128, recomputations: 16, update: true, grad_batch_size: null}`` (PruningKnobs;
the official main_prun.py defaults [repo]). At the end of training, for each sparsity s, a copy of the trained
network is pruned from the dense weights (pruning.py) over every parameter with more than one dimension (linear
and convolution weights; biases and norms stay dense, as the official ``params`` list of conv/fc weights [repo])
and evaluated on the test split, without fine-tuning or BatchNorm re-tuning (the official one-shot run,
``--nepochs 0``, evaluates right after pruning [repo]). The trained network is unchanged.

M-FAC's m gradients are those of the mean cross-entropy of m consecutive training batches (the run's own batches,
or chunks of ``grad_batch_size`` of them; official: m batches of ``--prun_batchsize`` 32 [repo]), in eval mode,
from the epoch after the last trained one on (a fixed function of the seed), continuing across recomputations.
Keys added to the last history row (so to ``record.metrics.final``), NN = round(100 s): ``prune/acc_sNN`` (test
accuracy after pruning by ``method``) and ``prune/sparsity_sNN`` (the fraction of prunable weights that are zero:
a check). Single process only: under DDP each rank would prune and count its own test shard.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from typing import Annotated, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig
from pydantic import Field, field_validator
from torch import Tensor, nn

from optrepro.config_schema import PosFloat, PosInt, Section, Text, check_callback
from reproductions.mfac.pruning import magnitude_mask, mfac_prune

METHODS = ("mfac", "magnitude")


class PruningKnobs(Section):
    """``callbacks.mfac_pruning`` (values: configs/setting/mfac_prune_*.yaml, the official main_prun.py defaults
    [repo], read as given; no defaults here)."""

    target: Text = Field(alias="_target_")
    method: Literal[METHODS]
    sparsities: Annotated[list[Annotated[float, Field(gt=0, lt=1)]], Field(min_length=1)]
    ngrads: PosInt
    damp: PosFloat  # lambda in F = lambda I + G^T G / m
    blocksize: PosInt | None
    recomputations: PosInt
    update: bool
    grad_batch_size: PosInt | None

    @field_validator("sparsities")
    @classmethod
    def each_percentage_once(cls, sparsities: list[float]) -> list[float]:
        if len({round(100 * s) for s in sparsities}) != len(sparsities):  # NN of prune/acc_sNN names a result
            raise ValueError(f"{sparsities} name one percentage twice; give each percentage once")
        return sparsities


def prunable(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.dim() > 1]


def flat(tensors) -> Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


@torch.no_grad()
def set_flat(params: list[nn.Parameter], vector: Tensor) -> None:
    offset = 0
    for p in params:
        p.copy_(vector[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


@torch.no_grad()
def accuracy(net: nn.Module, batches) -> float:
    correct, total = 0.0, 0.0
    for inputs, targets, *_ in batches:
        correct += float((net(inputs).argmax(dim=-1) == targets).sum())
        total += float(targets.numel())
    return correct / max(total, 1.0)


class OneShotPruningCallback(Callback):
    def __init__(
        self,
        *,
        method: str,
        sparsities: list[float],
        ngrads: int,
        damp: float,
        blocksize: int | None,
        recomputations: int,
        update: bool,
        grad_batch_size: int | None,
    ) -> None:
        """The PruningKnobs, checked by the config check (validate) before any work."""
        self.method, self.sparsities, self.ngrads = method, [float(s) for s in sparsities], ngrads
        self.damp, self.blocksize, self.recomputations = float(damp), blocksize, recomputations
        self.update, self.grad_batch_size = update, grad_batch_size

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Called by the config check with the callback's node: a bad knob stops the run before any work."""
        check_callback(entry, PruningKnobs)

    def prune(self, net: nn.Module, sparsity: float, batches: Iterator) -> Tensor:
        """Prune ``net`` (a copy) in place to ``sparsity``; returns the kept mask over its prunable weights."""
        params = prunable(net)
        weights = flat(params)
        if self.method == "magnitude":
            kept = magnitude_mask(weights, sparsity)
            set_flat(params, weights * kept)
            return kept

        def gradients(w: Tensor, alive: Tensor) -> Tensor:
            set_flat(params, w)
            rows = []
            for inputs, targets, *_ in itertools.islice(batches, self.ngrads):
                net.zero_grad(set_to_none=True)
                F.cross_entropy(net(inputs).float(), targets).backward()
                rows.append(flat(p.grad for p in params)[alive].to(torch.float64))
            net.zero_grad(set_to_none=True)
            return torch.stack(rows)

        pruned, kept = mfac_prune(
            weights,
            sparsity,
            gradients,
            damp=self.damp,
            blocksize=self.blocksize,
            recomputations=self.recomputations,
            update=self.update,
        )
        set_flat(params, pruned * kept)
        return kept

    def gradient_batches(self, loader, first_epoch: int) -> Iterator:
        """The run's training batches from ``first_epoch`` on, each cut into ``grad_batch_size`` chunks if set."""
        batches = itertools.chain.from_iterable(loader.epoch_batches(e) for e in itertools.count(first_epoch))
        size = self.grad_batch_size
        if size is None:
            return batches
        return (
            (inputs[i : i + size], targets[i : i + size])
            for inputs, targets, *_ in batches
            for i in range(0, len(targets) - size + 1, size)
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not getattr(pl_module, "history", None) or getattr(pl_module, "diverged", False):
            return
        datamodule = trainer.datamodule
        loader = datamodule.train_dataloader()
        first = trainer.fit_loop.epoch_progress.current.processed
        was_training = pl_module.net.training
        metrics = {}
        for sparsity in self.sparsities:
            tag = f"s{round(100 * sparsity)}"
            net = copy.deepcopy(pl_module.net).eval()
            stream = self.gradient_batches(loader, first)
            kept = self.prune(net, sparsity, stream)
            metrics[f"prune/sparsity_{tag}"] = float((~kept).sum()) / kept.numel()
            metrics[f"prune/acc_{tag}"] = accuracy(net, datamodule.val_dataloader())
        pl_module.net.train(was_training)
        pl_module.add_to_last_history_row(metrics)
