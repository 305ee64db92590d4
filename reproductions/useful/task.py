"""`task=useful`: UpSample Early For Uniform Learning (USEFUL; Nguyen et al., NeurIPS 2024, arXiv:2404.17768).

1. Train a fresh network with the run's own model, optimizer and schedule for `separating_epoch` epochs (the first
   epochs of the run; the schedule keeps the run's length, so its learning rates are those of the run's start).
2. Per class, k-means (`clusters`, the paper's 2) on that network's outputs for the training examples; the cluster
   with the higher mean cross-entropy is slow-learnable (clustering.py).
3. Upsample that cluster once: `upsample_factor` copies of each of its examples (upsample.py).
4. Re-seed as the run started and train from scratch on the changed set: the network built next gets exactly the
   weights the same seed gives a plain run, and the run's epochs, batch size and schedule are unchanged (an epoch
   is longer by the added copies). The early network is thrown away.

Any classification preset composes it with `task=useful` (the presets here add `task.separating_epoch=...`).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Annotated

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from pydantic import Field

from optrepro import builders
from optrepro.config import check_epoch_batches
from optrepro.config_schema import PosInt, Section, Text, check_section, choice
from optrepro.data.batches import EvalBatches
from optrepro.data.datamodule import TensorDataModule
from optrepro.errors import InvalidConfigError
from optrepro.train import ClassificationTask
from reproductions.useful.clustering import slow_learnable
from reproductions.useful.upsample import upsampled

log = logging.getLogger(__name__)
OUTPUTS = ("logits", "softmax")


class UsefulKnobs(Section):
    """The task node (values: configs/task/useful.yaml; the presets set separating_epoch)."""

    target: Text = Field(alias="_target_")
    separating_epoch: PosInt  # the epoch the early run stops at: before train.epochs
    upsample_factor: Annotated[int, Field(ge=2)]  # copies of each slow-learnable example
    clusters: Annotated[int, Field(ge=2)]  # k-means clusters per class
    outputs: Annotated[str, choice("reproductions.useful.task:OUTPUTS")]  # what k-means clusters


def validate(cfg: DictConfig) -> None:
    """The task's knobs, checked by the config check (rule task_config) before any run folder or data load."""
    knobs = check_section(cfg, "task", UsefulKnobs)
    epochs = int(cfg.train.epochs)
    if knobs.separating_epoch >= epochs:
        raise InvalidConfigError(
            "task.separating_epoch",
            f"{knobs.separating_epoch} is not before the run's last epoch (train.epochs={epochs})",
            "separate after ~5-10% of train.epochs",
        )
    if int(cfg.hardware.devices) * int(cfg.hardware.num_nodes) != 1:
        raise InvalidConfigError(
            "hardware.devices", "USEFUL's early run and clustering run in one process", "run task=useful on one device"
        )


class UsefulTask(ClassificationTask):
    """The default classification run, on the training set USEFUL changed (module docstring)."""

    validate = staticmethod(validate)

    def __init__(
        self, separating_epoch: int, upsample_factor: int = 2, clusters: int = 2, outputs: str = "logits"
    ) -> None:
        self.separating_epoch, self.upsample_factor = separating_epoch, upsample_factor
        self.clusters, self.outputs = clusters, outputs

    def build_data(self, cfg: DictConfig):
        datamodule, data = super().build_data(cfg)
        splits = datamodule.splits
        logits = self.early_logits(cfg, datamodule, data)
        losses = F.cross_entropy(logits, splits.y_train, reduction="none")
        features = logits if self.outputs == "logits" else logits.softmax(dim=1)
        slow = slow_learnable(
            features.numpy(), splits.y_train.numpy(), losses.numpy(), clusters=self.clusters, seed=int(cfg.seed)
        )
        log.info(
            "USEFUL: %d of %d training examples are slow-learnable at epoch %d (mean loss %.3f vs %.3f)",
            len(slow),
            splits.num_train,
            self.separating_epoch,
            float(losses[slow].mean()),
            float(np.delete(losses.numpy(), slow).mean()),
        )
        self.upsampled_examples = len(slow) * (self.upsample_factor - 1)
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)  # the retrain starts as a plain run would
        changed = upsampled(splits, slow, self.upsample_factor)
        check_epoch_batches(cfg, changed.num_train)
        module = TensorDataModule(
            changed,
            batch_size=datamodule.batch_size,
            augment=cfg.dataset.augment,
            seed=int(cfg.seed),
            drop_last=bool(cfg.train.drop_last),
            channels_last=bool(cfg.hardware.channels_last),
        )
        return module, dataclasses.replace(data, num_train=changed.num_train)

    def record_extra(self, data) -> dict:
        """The record says how long the changed epoch is: `train_samples` (original + copies; the full-tier test
        counts the run's steps from it) and `useful_copies`, the copies of slow-learnable examples added."""
        return {**super().record_extra(data), "train_samples": data.num_train, "useful_copies": self.upsampled_examples}

    def early_logits(self, cfg: DictConfig, datamodule, data) -> torch.Tensor:
        """Train a fresh network for `separating_epoch` epochs; its float logits on every training example, in order.

        The module gets the run's config (its schedule spans the whole run); only the trainer stops early, without
        evaluation, checkpoints or loggers."""
        early = OmegaConf.merge(
            cfg, {"limits": {"max_epochs": self.separating_epoch, "eval_batches": 0}, "train": {"checkpoint": False}}
        )
        module = self.build_module(cfg, builders.build_net(cfg, data), data)
        with tempfile.TemporaryDirectory() as folder:
            builders.build_trainer(early, Path(folder), [], []).fit(module, datamodule=datamodule)
        net = module.net.eval()
        batches = EvalBatches(
            datamodule.x_train, datamodule.y_train, batch_size=datamodule.eval_batch_size, to_input=datamodule.to_input
        )
        with torch.no_grad():
            return torch.cat([net(x).float().cpu() for x, _, _ in batches])
