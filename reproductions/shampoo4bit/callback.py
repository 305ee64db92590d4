"""QuantizationErrorCallback: the paper's Table 1 measurement on the preconditioners of the run's own Shampoo.

Node: ``callbacks.shampoo4bit_error: {_target_: reproductions.shampoo4bit.callback.QuantizationErrorCallback, ...}``.
After the last epoch it reads the statistics of the run's ``optrepro.optim.shampoo.Shampoo`` (one per dimension of each
parameter with at least two dimensions; those of order below ``min_order`` are left out, as the paper leaves
matrices under 4096 entries in fp32) and, for each, the errors of A^{-1/4} (inverse_root.py) with A stored three ways:
quantized preconditioner, quantized eigenvectors, quantized eigenvectors + Björck rectification. The last history
row (so the record's final metrics) gets the means over the matrices:
``q4/nre_<target>``, ``q4/ae_<target>`` (degrees), ``q4/nre`` and ``q4/ae`` of the arm's ``target``,
``q4/nre_ratio`` = nre_eigenvectors_rectified / nre_preconditioner, ``q4/matrices``, ``q4/log10_cond`` (mean log10
condition number, the quantity the paper's Fig. 6 varies) and ``q4/state_bytes_ratio`` (4-bit eigenvector state
bytes over fp32, summed over the matrices).

``StateBytesCallback`` (``callbacks.shampoo4bit_bytes``) adds ``q4/preconditioner_state_bytes`` of a LowBitShampoo
run (optimizer.py: ``state_bytes``) to the last epoch's row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import Section, Text, callback_key, check_node, choice
from optrepro.errors import InvalidConfigError
from optrepro.lit.last_row import LastRowCallback
from optrepro.optim.shampoo import Shampoo
from reproductions.shampoo4bit.inverse_root import (
    TARGETS,
    angle_error_degrees,
    exact_root,
    quantized_root,
    relative_error,
)
from reproductions.shampoo4bit.quantize import stored_bytes

KEY = "callbacks.shampoo4bit_error"


class QuantizationErrorKnobs(Section):
    """``callbacks.shampoo4bit_error``: the defaults are here, for a node that gives its ``_target_`` alone;
    the presets give their runs' values."""

    target_: Text | None = Field(None, alias="_target_")
    target: Annotated[str, choice("reproductions.shampoo4bit.inverse_root:TARGETS")] = "eigenvectors_rectified"
    mapping: Annotated[str, choice("reproductions.shampoo4bit.quantize:MAPPINGS")] = "linear2"
    bits: Annotated[int, Field(ge=2, le=8)] = 4
    block: Annotated[int, Field(ge=1, le=1 << 20)] = 64
    rectify_steps: Annotated[int, Field(ge=0, le=100)] = 1
    epsilon: Annotated[float, Field(gt=0, lt=1)] = 1e-6
    min_order: Annotated[int, Field(ge=1, le=1 << 20)] = 64  # statistics of a lower order are left out


def check_knobs(node: DictConfig | Mapping[str, Any], key: str) -> QuantizationErrorKnobs:
    """The node at `key` typed by QuantizationErrorKnobs, then the rule that ties two of them."""
    knobs = check_node(node, key, QuantizationErrorKnobs)
    if knobs.mapping == "dynamic_tree" and knobs.bits != 4:
        raise InvalidConfigError(
            f"{key}.bits",
            f"{knobs.bits} with the dynamic-tree map, given for 4 bits only",
            "set bits=4 or mapping=linear2",
        )
    return knobs


def shampoo_statistics(optimizer: torch.optim.Optimizer, min_order: int) -> list[torch.Tensor]:
    """The statistics of a Shampoo optimizer's matrix (or higher-order) parameters of order >= min_order."""
    if not isinstance(optimizer, Shampoo):
        raise InvalidConfigError(
            KEY,
            f"needs optimizer=shampoo, the run has {type(optimizer).__name__}",
            "use optimizer=shampoo or drop the callback",
        )
    return [
        stat
        for p, state in optimizer.state.items()
        if p.dim() >= 2
        for stat in state.get("statistics", [])
        if stat is not None and stat.shape[0] >= min_order
    ]


class QuantizationErrorCallback(LastRowCallback):
    """Adds the ``q4/*`` errors to the last epoch's history row (module docstring)."""

    def __init__(self, **knobs) -> None:
        """Knobs: QuantizationErrorKnobs (its defaults for those not given); a config's are checked by validate
        first."""
        typed = check_knobs(knobs, KEY)
        self.target = typed.target
        self.mapping = typed.mapping
        self.bits = typed.bits
        self.block = typed.block
        self.rectify_steps = typed.rectify_steps
        self.epsilon = typed.epsilon
        self.min_order = typed.min_order

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Run by the config check (optrepro.builders.callback_entries) before any work."""
        check_knobs(entry, callback_key(entry))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        shampoo_statistics(trainer.optimizers[0], self.min_order)  # a run without Shampoo stops before any step

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = pl_module.history
        if not history or "q4/nre" in history[-1] or int(history[-1]["epoch"]) + 1 < int(trainer.max_epochs):
            return
        pl_module.add_to_last_history_row(self.measure(shampoo_statistics(trainer.optimizers[0], self.min_order)))

    def measure(self, matrices: list[torch.Tensor]) -> dict[str, float]:
        """The ``q4/*`` values over ``matrices`` (NaN when there is none or one is not finite)."""
        quant = {"mapping": self.mapping, "bits": self.bits, "block": self.block}
        errors: dict[str, list[float]] = {f"{kind}_{t}": [] for kind in ("nre", "ae") for t in TARGETS}
        conds, quantized_bytes, full_bytes = [], 0.0, 0.0
        for matrix in matrices:
            matrix = matrix.detach().double().cpu()
            if not torch.isfinite(matrix).all():
                return {"q4/nre": math.nan, "q4/ae": math.nan, "q4/matrices": float(len(matrices))}
            exact = exact_root(matrix, self.epsilon)
            for target in TARGETS:
                approx = quantized_root(matrix, target, self.epsilon, self.rectify_steps, **quant)
                errors[f"nre_{target}"].append(relative_error(exact, approx))
                errors[f"ae_{target}"].append(angle_error_degrees(exact, approx))
            eigenvalues = torch.linalg.eigvalsh(matrix)
            conds.append(math.log10(float(eigenvalues.max() / eigenvalues.min().clamp_min(1e-300))))
            quantized_bytes += stored_bytes(*matrix.shape, self.bits, self.block)
            full_bytes += 4 * matrix.numel()
        if not matrices:
            return {"q4/nre": math.nan, "q4/ae": math.nan, "q4/matrices": 0.0}
        out = {f"q4/{name}": sum(values) / len(values) for name, values in errors.items()}
        out.update(
            {
                "q4/nre": out[f"q4/nre_{self.target}"],
                "q4/ae": out[f"q4/ae_{self.target}"],
                "q4/nre_ratio": out["q4/nre_eigenvectors_rectified"] / out["q4/nre_preconditioner"],
                "q4/matrices": float(len(matrices)),
                "q4/log10_cond": sum(conds) / len(conds),
                "q4/state_bytes_ratio": quantized_bytes / full_bytes,
            }
        )
        return out


class StateBytesCallback(LastRowCallback):
    """Adds the bytes of LowBitShampoo's stored preconditioner state to the last epoch's history row."""

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = pl_module.history
        optimizer = trainer.optimizers[0]
        if (
            not history
            or int(history[-1]["epoch"]) + 1 < int(trainer.max_epochs)
            or not hasattr(optimizer, "state_bytes")
        ):
            return
        pl_module.add_to_last_history_row({"q4/preconditioner_state_bytes": float(optimizer.state_bytes())})
