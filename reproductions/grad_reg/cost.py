"""The cost of a gradient-regularization step, finite differences against double backpropagation, measured side by
side in one process at the end of a training run (``callbacks.gr_cost``, preset ``gr_cost_cpu``).

The paper's efficiency claim (the finite-difference computation "reduces the computational cost of GR" [abstract])
is about the work per step, so every method's step (step.py, built from the run's own optimizer node with only
``method`` changed) trains a copy of the run's trained network on the same fixed training batches from the same
weights: ``steps`` steps per block, the methods' blocks interleaved in a rotated order for ``repetitions`` rounds
after one warm-up round. Each block's process CPU time per step is measured (on a shared machine it counts this
process's work, not the wait for a core); the last history row gets ``cost/<method>_cpu_s_per_step`` (medians over
rounds) and the ratios ``cost/<a>_over_<b>`` (medians of the per-round ratios). One process, on the CPU.
"""

from __future__ import annotations

import copy
import statistics
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from pydantic import Field
from torch import nn

from optrepro.config_schema import (
    NonNegFloat,
    PosFloat,
    PosInt,
    Probability,
    Section,
    Text,
    check_callback,
)
from optrepro.optim.backend import LocalBackend
from reproductions.grad_reg.step import METHODS, build_gr_step

RATIOS = (
    ("fd_forward", "double_backprop"),
    ("fd_backward", "double_backprop"),
    ("fd_forward", "none"),
    ("double_backprop", "none"),
)


class GRCostKnobs(Section):
    """``callbacks.gr_cost`` (values: configs/repro/gr_cost_cpu.yaml, read as given; no defaults here)."""

    target: Text = Field(alias="_target_")
    gamma: NonNegFloat
    epsilon: PosFloat
    lr: PosFloat
    momentum: Probability
    repetitions: PosInt
    steps: PosInt
    batches: PosInt


def time_blocks(
    optimizer_node: DictConfig,
    net: nn.Module,
    batches: list,
    num_train: int,
    num_classes: int,
    repetitions: int,
    steps: int,
) -> dict[str, list[float]]:
    """CPU seconds per step of each method's blocks on a copy of `net`, one list per method (warm-up left out)."""
    net = copy.deepcopy(net)
    backend = LocalBackend(net)
    start = {key: value.clone() for key, value in net.state_dict().items()}
    strategies = {}
    for method in METHODS:
        node = optimizer_node.copy()
        with open_dict(node):
            node.method = method
        strategies[method] = build_gr_step(
            node, net, num_train_samples=num_train, num_classes=num_classes, accumulate=1, grad_clip=None
        )[1]
    seconds: dict[str, list[float]] = {method: [] for method in METHODS}
    for round_index in range(repetitions + 1):
        order = METHODS[round_index % len(METHODS) :] + METHODS[: round_index % len(METHODS)]
        for method in order:
            net.load_state_dict(start)
            clock = time.process_time()
            for step in range(steps):
                strategies[method].training_step(backend, batches[step % len(batches)], epoch=0)
            if round_index > 0:
                seconds[method].append((time.process_time() - clock) / steps)
    return seconds


def cost_row(seconds: dict[str, list[float]]) -> dict[str, float]:
    row: dict[str, float] = {f"cost/{m}_cpu_s_per_step": statistics.median(v) for m, v in seconds.items()}
    for top, bottom in RATIOS:
        row[f"cost/{top}_over_{bottom}"] = statistics.median(a / b for a, b in zip(seconds[top], seconds[bottom]))
    return row


class GRCostCallback(Callback):
    """Preset node ``callbacks.gr_cost: {_target_: reproductions.grad_reg.cost.GRCostCallback, gamma, epsilon, lr,
    momentum, repetitions, steps, batches}`` (GRCostKnobs); the steps are timed around torch SGD with that lr and
    momentum."""

    @staticmethod
    def validate(entry: DictConfig) -> None:
        """Run by the config check (optrepro.builders.callback_entries) before any work."""
        check_callback(entry, GRCostKnobs)

    def __init__(
        self, *, gamma: float, epsilon: float, lr: float, momentum: float, repetitions: int, steps: int, batches: int
    ) -> None:
        self.optimizer = OmegaConf.create(
            {
                "base": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": lr, "momentum": momentum},
                "method": "none",
                "gamma": gamma,
                "epsilon": epsilon,
            }
        )
        self.repetitions, self.steps, self.batches = repetitions, steps, batches

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not pl_module.history:
            return
        data = trainer.datamodule
        size = data.batch_size
        batches = [
            (data.to_input(data.x_train[i * size : (i + 1) * size]), data.y_train[i * size : (i + 1) * size], None)
            for i in range(self.batches)
        ]
        seconds = time_blocks(
            self.optimizer,
            pl_module.net,
            batches,
            data.num_train_samples,
            int(data.splits.num_classes),
            self.repetitions,
            self.steps,
        )
        pl_module.add_to_last_history_row(cost_row(seconds))
