"""From a composed config to the objects of one run: data, network, Lightning module, trainer."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig
from torch import nn

from optrepro.config import check_epoch_batches, per_device_batch_size, world_size
from optrepro.config_schema import paper_validate
from optrepro.data import (
    FOLDER_DATASETS,
    ImageFolderDataModule,
    TensorDataModule,
    dataset_info,
    load_splits,
)
from optrepro.data.batches import batches_per_epoch
from optrepro.distributed import build_ddp_strategy
from optrepro.errors import InvalidConfigError, OptreproError
from optrepro.lit.module import ClassifierModule
from optrepro.lit.progress import progress_callback
from optrepro.losses import CastLogits, LossFn
from optrepro.optim.factory import build_optimizer
from optrepro.paths import import_reproductions
from optrepro.schedulers import build_scheduler


def instantiate_node(node, key: str, **kwargs):
    """`instantiate(node, **kwargs)` for the config node at `key`; a target that cannot be built is a ConfigError."""
    import_reproductions()
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, OptreproError):  # the target's own check: its message names the key
            raise err.__cause__ from None
        cause = " ".join(str(err.__cause__ or err).split())
        raise InvalidConfigError(
            key,
            f"could not build {node.get('_target_')!r} ({cause})",
            "check its _target_ (a paper's own code: reproductions.<paper>.<module>.<name>) and its arguments",
        ) from err


@dataclass(frozen=True)
class DataInfo:
    """What the model, optimizer and scheduler need to know about the data."""

    num_classes: int
    input_shape: tuple[int, ...]
    num_train: int
    noisy_label_fraction: float = 0.0
    eval_split: str = "test"  # "val" when dataset.val_fraction holds out a validation split


def build_data(cfg: DictConfig) -> tuple[pl.LightningDataModule, DataInfo]:
    """In-memory datasets become a TensorDataModule; folder datasets (ImageNet) a worker DataLoader module."""
    batch_size = per_device_batch_size(cfg)
    if cfg.dataset.name in FOLDER_DATASETS:
        folders = ImageFolderDataModule(
            cfg.dataset.path,
            batch_size,
            seed=int(cfg.seed),
            num_workers=int(cfg.dataset.num_workers),
            data_dir=cfg.paths.data_dir,
            drop_last=bool(cfg.train.drop_last),
        )
        folders.setup()
        check_epoch_batches(cfg, folders.num_train_samples)
        return folders, DataInfo(folders.num_classes, folders.input_shape, folders.num_train_samples)
    splits = load_splits(cfg.dataset, Path(cfg.paths.data_dir), seed=int(cfg.seed))
    check_epoch_batches(cfg, splits.num_train)
    num_classes, input_shape = dataset_info(splits)
    datamodule = TensorDataModule(
        splits,
        batch_size=batch_size,
        augment=cfg.dataset.augment,
        seed=int(cfg.seed),
        drop_last=bool(cfg.train.drop_last),
        channels_last=bool(cfg.hardware.channels_last),
    )
    return datamodule, DataInfo(
        num_classes, input_shape, splits.num_train, splits.noisy_label_fraction, splits.eval_split
    )


def build_net(cfg: DictConfig, data: DataInfo) -> nn.Module:
    net = instantiate_node(cfg.model, "model", num_classes=data.num_classes, input_shape=data.input_shape)
    if cfg.hardware.channels_last and len(data.input_shape) == 3:
        net = net.to(memory_format=torch.channels_last)
    if cfg.hardware.compile:
        net.compile()  # in place, unlike torch.compile(net): checkpoints keep plain keys, no "_orig_mod." prefix
    return net


def train_steps_per_epoch(cfg: DictConfig, num_train: int) -> int:
    """Optimizer steps in one epoch, as the scheduler must see them (debug limits included)."""
    steps = batches_per_epoch(num_train, per_device_batch_size(cfg), world_size(cfg), bool(cfg.train.drop_last))
    limit = cfg.limits.train_batches
    return min(steps, int(limit)) if limit else steps


def epochs_to_run(cfg: DictConfig) -> int:
    return int(cfg.limits.max_epochs or cfg.train.epochs)


def build_module(
    cfg: DictConfig,
    net: nn.Module,
    data: DataInfo,
    module_class: type[ClassifierModule] = ClassifierModule,
    **module_kwargs,
) -> ClassifierModule:
    """The run's LightningModule; a paper's task may pass a ClassifierModule subclass and its own keyword arguments
    (reproductions/rnn_clipping/regression.py: regression metrics)."""
    optimizer_builder = functools.partial(
        build_optimizer,
        cfg.optimizer,
        num_train_samples=data.num_train,
        num_classes=data.num_classes,
        accumulate=int(cfg.train.accumulate),
        grad_clip=cfg.train.grad_clip,
    )
    scheduler_builder = functools.partial(
        build_scheduler,
        cfg.scheduler,
        steps_per_epoch=train_steps_per_epoch(cfg, data.num_train),
        epochs=epochs_to_run(cfg),
    )
    loss_fn = build_train_loss(cfg)
    module = module_class(
        net,
        optimizer_builder,
        scheduler_builder,
        label_smoothing=float(cfg.train.label_smoothing),
        channels_last=bool(cfg.hardware.channels_last),
        loss_fn=loss_fn,
        **module_kwargs,
    )
    module.eval_split = data.eval_split
    if hasattr(loss_fn, "bind_step"):
        loss_fn.bind_step(lambda: module.global_step)  # a loss with a schedule reads the optimizer steps taken so far
    return module


def build_task(cfg: DictConfig):
    """The `task` node instantiated: an object whose `run(cfg)` does the run and returns its record."""
    return instantiate_node(cfg.get("task") or {"_target_": "optrepro.train.ClassificationTask"}, "task")


def build_train_loss(cfg: DictConfig) -> LossFn:
    """The `loss` node instantiated with the run's label smoothing, its logits cast to `train.loss_dtype` if set."""
    node = cfg.get("loss") or {"_target_": "optrepro.losses.CrossEntropy"}
    loss_fn = instantiate_node(node, "loss", label_smoothing=float(cfg.train.label_smoothing))
    dtype = cfg.train.get("loss_dtype")
    return CastLogits(loss_fn, dtype) if dtype is not None else loss_fn


def build_callbacks(cfg: DictConfig, run_dir: Path) -> list[Callback]:
    """The product's own callbacks, then every `callbacks.<name>` entry instantiated from its `_target_`."""
    callbacks: list[Callback] = []
    if cfg.train.checkpoint:
        # The newest epoch-end checkpoint, with last.ckpt linking to it: what a preempted run resumes from.
        # At every epoch end, also when the test split is evaluated only every train.eval_every epochs (Lightning
        # would otherwise save at evaluation only); save_top_k=0 would never write last.ckpt before training ends.
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                save_last="link",
                save_top_k=1,
                every_n_epochs=1,
                save_on_train_epoch_end=True,
            )
        )
    for name, entry in callback_entries(cfg).items():
        callback = instantiate_node(entry, f"callbacks.{name}")
        if not isinstance(callback, Callback):
            raise InvalidConfigError(
                f"callbacks.{name}",
                f"{entry._target_} is not a Lightning Callback",
                "give a subclass of lightning.pytorch.callbacks.Callback",
            )
        callbacks.append(callback)
    callbacks.append(progress_callback())  # a loss/accuracy bar on a terminal, one line per epoch otherwise
    return callbacks


def callback_entries(cfg: DictConfig) -> dict[str, DictConfig]:
    """The `callbacks` node, checked: every entry names its class in `_target_`."""
    entries = dict((cfg.get("callbacks") or {}).items())
    for name, entry in entries.items():
        if not isinstance(entry, DictConfig) or "_target_" not in entry:
            raise InvalidConfigError(
                f"callbacks.{name}",
                "has no _target_",
                "give the callback class, e.g. "
                f"+callbacks.{name}._target_=lightning.pytorch.callbacks.LearningRateMonitor",
            )
        import_reproductions()
        try:
            callback_class = get_class(entry._target_)
        except Exception as exc:  # Hydra wraps import and attribute errors alike
            raise InvalidConfigError(
                f"callbacks.{name}._target_",
                f"cannot import {entry._target_!r} ({type(exc).__name__})",
                "give the dotted path of a Callback class",
            ) from None
        paper_validate(callback_class, entry)  # a paper's callback checks its own knobs before any work
    return entries


# Trainer arguments the product computes; a `trainer.<key>` for one of them names the knob to set instead.
DERIVED_TRAINER_ARGS = {
    "max_epochs": "train.epochs (or limits.max_epochs)",
    "limit_train_batches": "limits.train_batches",
    "limit_val_batches": "limits.eval_batches",
    "check_val_every_n_epoch": "train.eval_every",
    "accelerator": "hardware.accelerator",
    "devices": "hardware.devices",
    "num_nodes": "hardware.num_nodes",
    "strategy": "hardware (a hardware preset)",
    "precision": "hardware.precision",
    "sync_batchnorm": "hardware.sync_batchnorm",
    "deterministic": "hardware.deterministic",
    "logger": "logger.*",
    "callbacks": "callbacks.<name>",
    "plugins": "hardware (SLURM is detected)",
    "default_root_dir": "paths.runs_dir",
    "use_distributed_sampler": "dataset (set per dataset kind)",
    "num_sanity_val_steps": "nothing (always 0)",
}
# Trainer arguments a user may set: they change how a run is observed, never what it computes, so the
# `trainer` node stays out of the run's hash.
USER_TRAINER_ARGS = ("profiler", "detect_anomaly", "log_every_n_steps", "enable_model_summary", "enable_progress_bar")


def trainer_options(cfg: DictConfig) -> dict:
    """The user's `trainer` node without `_target_`, checked: a derived or computation-changing key is an error."""
    node = cfg.get("trainer") or {}
    options = {k: v for k, v in node.items() if k != "_target_"}
    for key in options:
        if key in DERIVED_TRAINER_ARGS:
            raise InvalidConfigError(
                f"trainer.{key}", "is computed by optrepro", f"set {DERIVED_TRAINER_ARGS[key]} instead"
            )
        if key not in USER_TRAINER_ARGS:
            known = key in inspect.signature(pl.Trainer.__init__).parameters
            what = "changes what a run computes, so optrepro does not take it" if known else "is not a Trainer option"
            raise InvalidConfigError(f"trainer.{key}", what, f"the trainer node accepts {', '.join(USER_TRAINER_ARGS)}")
    return options


def build_trainer(cfg: DictConfig, run_dir: Path, loggers: list[Logger], callbacks: list[Callback]) -> pl.Trainer:
    """`trainer._target_` called with the user's `trainer` options and the settings the product computes."""
    hw, limits = cfg.hardware, cfg.limits
    options = trainer_options(cfg)
    strategy, comm_callbacks = build_ddp_strategy(cfg)  # hardware.grad_compression: PowerSGD hook + its byte log
    callbacks = [*callbacks, *comm_callbacks]
    options.setdefault("enable_progress_bar", any(isinstance(c, RichProgressBar) for c in callbacks))
    trainer_class = get_class((cfg.get("trainer") or {}).get("_target_", "lightning.pytorch.Trainer"))
    return trainer_class(
        # optrepro handles preemption itself (lit/preemption.py); Lightning's own SLURM requeue would save
        # a mid-epoch checkpoint, from which a resumed run is not identical to an uninterrupted one.
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
        accelerator=hw.accelerator,
        devices=hw.devices,
        num_nodes=hw.num_nodes,
        strategy=strategy,
        precision=hw.precision,
        sync_batchnorm=hw.sync_batchnorm,
        deterministic=hw.deterministic,
        max_epochs=epochs_to_run(cfg),
        limit_train_batches=limits.train_batches,
        limit_val_batches=limits.eval_batches,
        check_val_every_n_epoch=int(cfg.train.eval_every),
        num_sanity_val_steps=0,
        use_distributed_sampler=cfg.dataset.name in FOLDER_DATASETS,  # the tensor loader shards by rank itself
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=bool(
            cfg.train.checkpoint
        ),  # else Lightning adds its own, writing under the logger's folder
        default_root_dir=run_dir,
        **options,
    )
