"""From a composed config to the objects of one run: data, network, Lightning module, trainer."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from torch import nn

from optrepro.config import per_device_batch_size
from optrepro.data import ArraySplits, TensorDataModule, dataset_info, load_splits
from optrepro.lit.module import ClassifierModule
from optrepro.optim.factory import build_optimizer
from optrepro.schedulers import build_scheduler


def build_datamodule(cfg: DictConfig, splits: ArraySplits) -> TensorDataModule:
    return TensorDataModule(
        splits,
        batch_size=per_device_batch_size(cfg),
        augment=cfg.dataset.augment,
        seed=int(cfg.seed),
        channels_last=bool(cfg.hardware.channels_last),
    )


def build_net(cfg: DictConfig, splits: ArraySplits) -> nn.Module:
    num_classes, input_shape = dataset_info(splits)
    net = instantiate(cfg.model, num_classes=num_classes, input_shape=input_shape)
    if cfg.hardware.channels_last and len(input_shape) == 3:
        net = net.to(memory_format=torch.channels_last)
    return net


def train_steps_per_epoch(cfg: DictConfig, num_train: int) -> int:
    """Optimizer steps in one epoch, as the scheduler must see them (debug limits included)."""
    steps = -(-num_train // int(cfg.train.batch_size))
    limit = cfg.limits.train_batches
    return min(steps, int(limit)) if limit else steps


def epochs_to_run(cfg: DictConfig) -> int:
    return int(cfg.limits.max_epochs or cfg.train.epochs)


def build_module(cfg: DictConfig, net: nn.Module, splits: ArraySplits) -> ClassifierModule:
    optimizer_builder = functools.partial(
        build_optimizer,
        cfg.optimizer,
        num_train_samples=splits.num_train,
        num_classes=splits.num_classes,
        accumulate=int(cfg.train.accumulate),
        grad_clip=cfg.train.grad_clip,
    )
    scheduler_builder = functools.partial(
        build_scheduler,
        cfg.scheduler,
        steps_per_epoch=train_steps_per_epoch(cfg, splits.num_train),
        epochs=epochs_to_run(cfg),
    )
    return ClassifierModule(
        net,
        optimizer_builder,
        scheduler_builder,
        label_smoothing=float(cfg.train.label_smoothing),
        channels_last=bool(cfg.hardware.channels_last),
    )


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    callbacks: list[Callback] = []
    if cfg.train.checkpoint:
        callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0))
    if sys.stdout.isatty():
        callbacks.append(RichProgressBar())
    return callbacks


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list[Logger], callbacks: list[Callback]) -> pl.Trainer:
    hw, limits = cfg.hardware, cfg.limits
    return pl.Trainer(
        accelerator=hw.accelerator,
        devices=hw.devices,
        num_nodes=hw.num_nodes,
        strategy=hw.strategy,
        precision=hw.precision,
        sync_batchnorm=hw.sync_batchnorm,
        deterministic=hw.deterministic,
        max_epochs=epochs_to_run(cfg),
        limit_train_batches=limits.train_batches,
        limit_val_batches=limits.eval_batches,
        check_val_every_n_epoch=int(cfg.train.eval_every),
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the tensor loader shards by rank itself
        logger=loggers or False,
        callbacks=callbacks,
        enable_progress_bar=any(isinstance(c, RichProgressBar) for c in callbacks),
        enable_model_summary=False,
        default_root_dir=run_dir,
        log_every_n_steps=1,
    )
