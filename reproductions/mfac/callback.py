"""IHVPErrorCallback: how far the running optimizer's M-FAC direction is from a dense solve over the same window.

Preset node ``callbacks.mfac_ihvp_error: {_target_: reproductions.mfac.callback.IHVPErrorCallback, every: 1}``.
Every ``every`` epochs and at the last, takes the M-FAC optimizer's latest (g, d = F^{-1} g), forms
F = lambda I + G^T G / m densely from the window it used (float64, O(d^2) memory: small models only) and adds
``mfac/ihvp_rel_error`` = ||d - F^{-1}_dense g|| / ||F^{-1}_dense g|| to the epoch's history row (so to the run
record). The window has then seen thousands of insertions, so this also checks the ring buffer's bookkeeping.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import PosInt, Section, Text, check_callback
from optrepro.lit.last_row import LastRowCallback
from reproductions.mfac.ihvp import dense_ihvp
from reproductions.mfac.optimizer import MFAC

ERROR_KEY = "mfac/ihvp_rel_error"


def relative_error(direction: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.to(torch.float64)
    error = torch.linalg.vector_norm(direction.to(torch.float64) - reference)
    return float(error / torch.linalg.vector_norm(reference))


class IHVPErrorKnobs(Section):
    """``callbacks.mfac_ihvp_error``: the default is here, for any preset that adds the callback by its ``_target_``
    alone; configs/setting/mfac_digits.yaml gives its runs' value."""

    target: Text | None = Field(None, alias="_target_")
    every: PosInt = 1  # epochs between measurements (the last epoch is always measured)


class IHVPErrorCallback(LastRowCallback):
    """Adds ``ERROR_KEY`` to the history row of every ``every``-th epoch and of the last."""

    def __init__(self, **knobs) -> None:
        """Knobs: IHVPErrorKnobs (its default for those not given); a config's are checked by validate first."""
        self.every = IHVPErrorKnobs.model_validate(knobs).every

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Run by the config check (optrepro.builders.callback_entries) before any work."""
        check_callback(entry, IHVPErrorKnobs)

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", None)
        if not history or ERROR_KEY in history[-1] or not trainer.optimizers:
            return
        optimizer = trainer.optimizers[0]
        epoch = trainer.current_epoch + 1
        if not isinstance(optimizer, MFAC) or optimizer.last is None:
            return
        if epoch % self.every and epoch < trainer.max_epochs:
            return
        grad, direction = optimizer.last
        window = optimizer.window
        reference = dense_ihvp(window.grads.cpu(), window.damp, grad.cpu())
        pl_module.add_to_last_history_row({ERROR_KEY: relative_error(direction.cpu(), reference)})
