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

from optrepro.errors import InvalidConfigError
from optrepro.lit.last_row import LastRowCallback
from reproductions.mfac.ihvp import dense_ihvp
from reproductions.mfac.optimizer import MFAC

ERROR_KEY = "mfac/ihvp_rel_error"


def relative_error(direction: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.to(torch.float64)
    error = torch.linalg.vector_norm(direction.to(torch.float64) - reference)
    return float(error / torch.linalg.vector_norm(reference))


class IHVPErrorCallback(LastRowCallback):
    """Adds ``ERROR_KEY`` to the history row of every ``every``-th epoch and of the last."""

    def __init__(self, every: int = 1) -> None:
        self.every = every

    @staticmethod
    def validate(entry) -> None:
        """`every` is a whole number >= 1, checked by the config check before any work."""
        every = entry.get("every", 1)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidConfigError(
                "callbacks.mfac_ihvp_error.every", f"{every!r} is not a whole number >= 1", "give e.g. 1"
            )

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
