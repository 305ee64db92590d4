"""EdgeOfStabilityCallback: lambda_max of the training loss, ||g|| and the SAM-edge of the run's step, in the record.

Node (any preset): ``callbacks.edge_of_stability: {_target_: reproductions.sam_eos.callback.EdgeOfStabilityCallback}``.
After every ``edge_every``-th epoch (a full-batch run: every step) on a fixed probe set (the first ``samples`` training
examples, all when null: the full batch), with the run's training loss at the current weights:
- ``eos/grad_norm`` ||g|| of the plain (not the SAM) gradient, ``eos/sam_edge`` SE(eta, rho, ||g||) from the optimizer's
  current lr and rho (rho = 0 or no rho: GD, SE = 2/eta), ``eos/two_over_lr`` 2/eta, ``eos/probe_loss``;
- every ``hessian_every``-th epoch also ``eos/lambda_max`` (power iteration, warm-started: power.py),
  ``eos/lambda_over_edge`` = lambda_max / SE and ``eos/lambda_over_two_over_lr`` = lambda_max eta / 2;
- summaries over the measurements in the last ``late_fraction`` of the epochs, for the claims: ``eos/late_*`` means of
  the two ratios and of SE eta / 2, and ``eos/peak_lambda_over_two_over_lr`` (the largest over the run).
The official code measures on the training batch at wall-clock intervals (hours); here the interval is in epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig
from pydantic import Field

from optrepro.config_schema import NonNegInt, PosInt, Section, Text, callback_key, check_node
from optrepro.errors import InvalidConfigError
from optrepro.lit.last_row import LastRowCallback
from reproductions.sam_eos.edge import sam_edge
from reproductions.sam_eos.power import top_eigenpair

NAME = "edge_of_stability"


class EdgeKnobs(Section):
    """``callbacks.edge_of_stability``: the defaults are here, for a node that gives its ``_target_`` alone;
    configs/setting/eos_*.yaml give their runs' values."""

    target: Text | None = Field(None, alias="_target_")
    edge_every: PosInt = 1  # epochs between SE measurements
    hessian_every: PosInt = 10  # epochs between lambda_max measurements: a multiple of edge_every
    power_iterations: PosInt = 20
    tolerance: Annotated[float, Field(gt=0, lt=1)] = 1e-3
    samples: PosInt | None = None  # probe examples; null: the full training set
    late_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    seed: NonNegInt = 0


def check_knobs(node: DictConfig | Mapping[str, Any], key: str) -> EdgeKnobs:
    """The node at `key` typed by EdgeKnobs, then the rule that ties two of them."""
    knobs = check_node(node, key, EdgeKnobs)
    if knobs.hessian_every % knobs.edge_every:
        raise InvalidConfigError(
            f"{key}.hessian_every",
            f"{knobs.hessian_every} is not a multiple of edge_every {knobs.edge_every}",
            "lambda_max is compared with the SE of the same epoch",
        )
    return knobs


class EdgeOfStabilityCallback(LastRowCallback):
    def __init__(self, **knobs) -> None:
        """Knobs: EdgeKnobs (its defaults for those not given); a config's are checked by validate first."""
        typed = check_knobs(knobs, f"callbacks.{NAME}")
        self.edge_every = typed.edge_every
        self.hessian_every = typed.hessian_every
        self.power_iterations = typed.power_iterations
        self.tolerance = typed.tolerance
        self.samples = typed.samples
        self.late_fraction = typed.late_fraction
        self.seed = typed.seed
        self._vector: list[torch.Tensor] | None = None
        self._done_rows: set[int] = set()
        self._measured: list[dict[str, float]] = []  # one dict per lambda measurement: epoch and the two ratios

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Run by the config check (optrepro.builders.callback_entries) before any work."""
        check_knobs(entry, callback_key(entry))

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.history or len(pl_module.history) in self._done_rows:
            return
        self._done_rows.add(len(pl_module.history))
        epoch = int(pl_module.history[-1]["epoch"])
        if (epoch + 1) % self.edge_every:
            return
        values = self.measure(trainer, pl_module, with_hessian=(epoch + 1) % self.hessian_every == 0)
        if "eos/lambda_max" in values:
            self._measured.append(
                {
                    "epoch": epoch,
                    "ratio": values["eos/lambda_over_edge"],
                    "gd_ratio": values["eos/lambda_over_two_over_lr"],
                    "edge_ratio": values["eos/sam_edge"] / values["eos/two_over_lr"],
                }
            )
            values.update(self.summaries(int(trainer.max_epochs)))
        pl_module.add_to_last_history_row(values)

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, with_hessian: bool) -> dict[str, float]:
        data = trainer.datamodule
        count = len(data.y_train) if self.samples is None else min(self.samples, len(data.y_train))
        inputs, targets = data.to_input(data.x_train[:count]), data.y_train[:count]
        params = [p for p in pl_module.parameters() if p.requires_grad]
        group = trainer.optimizers[0].param_groups[0]
        was_training = pl_module.training
        pl_module.eval()
        try:
            values, vector = measure_edge(
                lambda: pl_module.backend.loss(pl_module(inputs), targets),
                params,
                float(group["lr"]),
                float(group.get("rho", 0.0)),
                self._start(params) if with_hessian else None,
                iterations=self.power_iterations,
                tolerance=self.tolerance,
            )
        finally:
            pl_module.train(was_training)
        self._vector = vector if vector is not None else self._vector
        return values

    def _start(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """The previous eigenvector, or a seeded random direction the first time."""
        if self._vector is not None:
            return self._vector
        generator = torch.Generator().manual_seed(self.seed)
        return [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]

    def summaries(self, max_epochs: int) -> dict[str, float]:
        """Means over the measurements in the last `late_fraction` of the run, and the run's peak lambda eta / 2."""
        first_late = max_epochs * (1.0 - self.late_fraction) - 1
        late = [m for m in self._measured if m["epoch"] >= first_late]
        out = {"eos/peak_lambda_over_two_over_lr": max(m["gd_ratio"] for m in self._measured)}
        if late:
            out.update(
                {
                    f"eos/late_{name}": sum(m[key] for m in late) / len(late)
                    for name, key in (
                        ("lambda_over_edge", "ratio"),
                        ("lambda_over_two_over_lr", "gd_ratio"),
                        ("edge_over_two_over_lr", "edge_ratio"),
                    )
                }
            )
            out["eos/late_measurements"] = float(len(late))
        return out


def measure_edge(
    loss_fn: Callable[[], torch.Tensor],
    params: list[torch.Tensor],
    lr: float,
    rho: float,
    start: list[torch.Tensor] | None,
    *,
    iterations: int = 20,
    tolerance: float = 1e-3,
) -> tuple[dict[str, float], list[torch.Tensor] | None]:
    """||g||, SE(lr, rho, ||g||) and 2/lr at the current weights; with a `start` direction also lambda_max (power
    iteration from it) and the two ratios. Returns the values and the eigenvector (None without `start`)."""
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params)
    grad_norm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    values = {"eos/probe_loss": float(loss.detach()), "eos/grad_norm": grad_norm, "eos/two_over_lr": 2.0 / lr}
    if not math.isfinite(grad_norm):
        return values, None
    values["eos/sam_edge"] = sam_edge(lr, rho, grad_norm)
    if start is None:
        return values, None
    pair = top_eigenpair(loss_fn, params, start, iterations=iterations, tolerance=tolerance)
    values.update(
        {
            "eos/lambda_max": pair.eigenvalue,
            "eos/power_iterations": float(pair.iterations),
            "eos/lambda_over_edge": pair.eigenvalue / values["eos/sam_edge"],
            "eos/lambda_over_two_over_lr": pair.eigenvalue * lr / 2.0,
        }
    )
    return values, pair.vector
