"""SharpnessCallback: lambda_max of the training-loss Hessian on one fixed batch, along training, in the history.

Node: ``callbacks.sharpness: {_target_: reproductions.super_consistency.sharpness.SharpnessCallback, ...}``.
The batch is the first `batch_size` samples of the (fixed) training split, the same at every measurement
(the paper's code uses one fixed batch [repo]; a batch that changes between snapshots adds noise). lambda_max comes
from power iteration on Hessian-vector products (optrepro.landscape.hessian), warm-started from the previous top
eigenvector. Logged per measured epoch, and at step 0 into the first row:
- ``sharpness/lambda_max``: lambda_max of the loss in the stored weights;
- ``sharpness/scaled``: lambda_max times the model's lr multiplier (N under muP), the quantity the paper compares
  across widths and with 2 / eta_0;
- ``sharpness/edge_ratio``: lambda_max times the physical lr over 2 (1 = the edge of stability of full-batch GD);
- ``sharpness/scaled_init`` (step 0) and ``sharpness/scaled_mean`` (mean over the measurements after step 0).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor

from optrepro.config_schema import PosInt, Section, Text, check_callback, check_node
from optrepro.landscape.hessian import hessian_vector_product
from optrepro.lit.last_row import LastRowCallback


def power_iteration(hvp, start: list[Tensor], iterations: int) -> tuple[float, list[Tensor]]:
    """(Rayleigh quotient after `iterations` products, the last unit vector) for the map `hvp` from `start`."""
    vector = unit(start)
    eigenvalue = 0.0
    for _ in range(iterations):
        product = hvp(vector)
        eigenvalue = float(sum((h * v).sum() for h, v in zip(product, vector)))
        vector = unit(product)
    return eigenvalue, vector


def unit(vector: list[Tensor]) -> list[Tensor]:
    norm = torch.sqrt(sum((v * v).sum() for v in vector)).clamp_min(1e-30)
    return [v / norm for v in vector]


class SharpnessKnobs(Section):
    """``callbacks.sharpness``: the defaults are here, for a node that gives its ``_target_`` alone."""

    target: Text | None = Field(None, alias="_target_")
    batch_size: PosInt = 128  # samples of the fixed measurement batch
    every_n_epochs: PosInt = 1
    iterations: PosInt = 20  # power iterations per measurement
    seed: int = 0


class SharpnessCallback(LastRowCallback):
    def __init__(self, **knobs) -> None:
        """Knobs: SharpnessKnobs (its defaults for those not given); a config's are checked by validate first."""
        typed = check_node(knobs, "callbacks.sharpness", SharpnessKnobs)
        self.batch_size, self.every, self.iterations = typed.batch_size, typed.every_n_epochs, typed.iterations
        self.seed = typed.seed
        self._vector: list[Tensor] | None = None
        self._init: dict[str, float] = {}
        self._scaled: list[float] = []
        self._done_rows: set[int] = set()
        self._ending = False

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Run by the config check (optrepro.builders.callback_entries) before any work."""
        check_callback(entry, SharpnessKnobs)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = self.measure(trainer, pl_module)
        self._init = {"sharpness/scaled_init": values["sharpness/scaled"]}

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._ending = True  # the last row is always measured
        super().on_train_end(trainer, pl_module)

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows = len(pl_module.history)
        if not rows or rows in self._done_rows:
            return
        self._done_rows.add(rows)
        if rows % self.every and not self._ending:
            return
        values = self.measure(trainer, pl_module)
        self._scaled.append(values["sharpness/scaled"])
        values["sharpness/scaled_mean"] = sum(self._scaled) / len(self._scaled)
        pl_module.add_to_last_history_row({**self._init, **values})

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        inputs, targets = fixed_batch(trainer, self.batch_size)
        model = pl_module.net
        params = [p for p in model.parameters() if p.requires_grad]
        if self._vector is None:
            generator = torch.Generator().manual_seed(self.seed)
            self._vector = [torch.randn(p.shape, generator=generator).to(p) for p in params]
        was_training = model.training
        model.eval()
        with torch.enable_grad(), torch.inference_mode(False):

            def loss_fn():
                return F.cross_entropy(model(inputs).float(), targets)

            lam, self._vector = power_iteration(
                lambda v: hessian_vector_product(loss_fn, params, v), self._vector, self.iterations
            )
        model.train(was_training)
        multiplier = float(getattr(model, "lr_multiplier", 1.0))
        physical_lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        return {
            "sharpness/lambda_max": lam,
            "sharpness/scaled": lam * multiplier,
            "sharpness/edge_ratio": lam * physical_lr / 2.0,
        }


def fixed_batch(trainer: pl.Trainer, size: int) -> tuple[Tensor, Tensor]:
    """The first `size` training samples as model inputs (normalized like the training batches, not augmented)."""
    data = trainer.datamodule
    return data.to_input(data.x_train[:size]), data.y_train[:size]
