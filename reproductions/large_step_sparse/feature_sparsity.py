"""FeatureSparsityCallback: the fraction of active ReLU units of a CIFAR ResNet at each block, along training.

Node: ``callbacks.feature_sparsity: {_target_: reproductions.large_step_sparse.feature_sparsity
.FeatureSparsityCallback, ...}``. The measure is the official deep-net code's (deep_nets/utils_eval.py
`compute_feature_sparsity` [repo]): the share of strictly positive entries of a block's output over training
inputs, not augmented, the network in eval mode. Blocks 1-4 are the outputs of the four stages (each ends in a
ReLU), block 5 the pooled features the classifier reads. Lower = sparser features. The official code also reports
a version that first drops neurons correlated above 0.95 with another; that one is not computed here.

Logged into each measured epoch's history row (so `metrics.final` holds the last one):
``sparsity/active_block1`` ... ``sparsity/active_block5``, every `every_n_epochs` epochs and after the last. The
inputs are the first `samples` training images, the same at every measurement (the official code reads 21 batches
of 512 = 10,752 unshuffled training images).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pydantic import Field
from torch import Tensor, nn

from optrepro.config_schema import PosInt, Section, Text, check_node
from optrepro.errors import InvalidConfigError
from optrepro.lit.last_row import LastRowCallback

OFFICIAL_SAMPLES = 21 * 512


def active_fraction(features: Tensor) -> tuple[int, int]:
    """(strictly positive entries, entries) of a batch of features."""
    return int((features > 0).sum()), features.numel()


def block_outputs(net: nn.Module, inputs: Tensor) -> list[Tensor]:
    """The outputs of the stages of a CifarResNet-shaped `net` (attributes `stages` and `fc`) and the pooled
    features that reach `fc`, in order, from one forward pass."""
    outputs: list[Tensor] = []
    hooks = [stage.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach())) for stage in net.stages]
    hooks.append(net.fc.register_forward_pre_hook(lambda _m, args: outputs.append(args[0].detach())))
    try:
        net(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def feature_sparsity(net: nn.Module, batches) -> dict[str, float]:
    """Fraction of active units per block over `batches` (an iterable of input tensors), model left as found."""
    was_training = net.training
    net.eval()
    active: list[int] = []
    total: list[int] = []
    with torch.no_grad():
        for inputs in batches:
            for index, out in enumerate(block_outputs(net, inputs)):
                positive, count = active_fraction(out)
                if index == len(active):
                    active.append(0)
                    total.append(0)
                active[index] += positive
                total[index] += count
    net.train(was_training)
    return {f"sparsity/active_block{i + 1}": a / t for i, (a, t) in enumerate(zip(active, total))}


class SparsityKnobs(Section):
    """`callbacks.feature_sparsity` (configs/setting/lss_resnet18_c10.yaml), typed once; the defaults are
    FeatureSparsityCallback's."""

    target: Text | None = Field(None, alias="_target_")
    samples: PosInt
    batch_size: PosInt
    every_n_epochs: PosInt


def check_knobs(samples, batch_size, every_n_epochs, name: str = "feature_sparsity", **others) -> None:
    """The knobs typed by SparsityKnobs, else a one-line error naming the key."""
    knobs = {**others, "samples": samples, "batch_size": batch_size, "every_n_epochs": every_n_epochs}
    check_node(knobs, f"callbacks.{name}", SparsityKnobs)


class FeatureSparsityCallback(LastRowCallback):
    def __init__(self, samples: int = OFFICIAL_SAMPLES, batch_size: int = 512, every_n_epochs: int = 1) -> None:
        check_knobs(samples, batch_size, every_n_epochs)
        self.samples, self.batch_size, self.every = samples, batch_size, every_n_epochs

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """The config check's call (optrepro.builders.callback_entries): the knobs, before any work."""
        knobs = OmegaConf.to_container(entry, resolve=True)
        knobs.setdefault("samples", OFFICIAL_SAMPLES)
        knobs.setdefault("batch_size", 512)
        knobs.setdefault("every_n_epochs", 1)
        check_knobs(name=str(entry._key()), **knobs)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        net = pl_module.net
        readable = isinstance(getattr(net, "stages", None), nn.Sequential) and isinstance(
            getattr(net, "fc", None), nn.Linear
        )
        if not readable:
            raise InvalidConfigError(
                "callbacks.feature_sparsity",
                f"{type(net).__name__} has no `stages` and `fc` to read block outputs from",
                "use a CIFAR ResNet (model=resnet18, resnet32, resnet56)",
            )

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Every `every_n_epochs`-th epoch and the last one."""
        epoch = int(pl_module.history[-1]["epoch"]) + 1
        if epoch % self.every and epoch < (trainer.max_epochs or 0):
            return
        data = trainer.datamodule
        images = data.x_train[: self.samples]
        batches = (data.to_input(images[i : i + self.batch_size]) for i in range(0, len(images), self.batch_size))
        pl_module.add_to_last_history_row(feature_sparsity(pl_module.net, batches))
