"""Steps per second of training through the optrepro stack vs a bare PyTorch loop doing the same work.

Why: every run goes through Hydra config -> builders -> Lightning Trainer -> ClassifierModule -> StepStrategy ->
records; this says what that costs per step compared with the loop a user would write by hand.

Stack: `optrepro.train.run` on the composed config (logger=csv), two epochs of N steps; its record's
`timing.last_epoch_time_per_step_s` is the second epoch alone (training clock only: evaluation, setup and the
first, warm-up epoch excluded). Bare: the same model (same builder and seed), the same batches (the same
TensorDataModule's TrainBatches: same tensors, order and augmentation) and the same torch SGD from the same
optimizer config, with `zero_grad / cross_entropy / backward / step`; one untimed epoch of N steps, then N
timed. Both run in this process, interleaved, median of the repetitions.

Floor: the same bare loop's step inside the leanest Lightning fit (a LightningModule with manual optimization doing
`zero_grad / cross_entropy / manual_backward / step`, no logger, callbacks, progress bar or checkpoint): what any
stack that hands Lightning one optimizer step per batch pays at least. Its ratio to the bare loop bounds what the
stack can reach on a tiny model.

Two clocks: wall time, and this process's CPU time (the record's `last_epoch_cpu_time_per_step_s`, `time.process_time`
for the bare loop). With one torch thread the CPU-time ratio does not count the time spent waiting for a core, so it
holds on a machine shared with other jobs; it is the figure printed last.

Cases:
- small_cnn: the SAM-family cpu tier's SGD arm (`+repro=sam_fmnist_cpu_sgd`: small CNN width 16, batch 128) on
  synthetic data of Fashion-MNIST's shape (common.FASHION_MNIST_SHAPED). Compute dominates: target ratio >= 0.97.
- mlp: the MLP on the 8x8 digits (batch 32), where a step is so cheap that per-step framework work shows.

Machine: a CPU (no GPU needed); defaults sized for an idle 2-core machine, about 2 minutes; one torch thread for
both contenders (`hardware.cpu_threads=1`, `torch.set_num_threads(1)`). Inputs: none (digits ship with scikit-learn).
Command: `python benchmarks/framework_overhead.py` (`--quick`: seconds, to check that it runs).
Prints stack/bare and floor/bare steps per second by wall time and by CPU time, the small_cnn CPU-time ratios last.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from common import (
    FASHION_MNIST_SHAPED,
    compose_config,
    describe_machine,
    interleaved,
    median_ratio,
    parse_args,
    print_ratio,
    quiet_lightning,
    timed_both_clocks,
)

from optrepro import builders
from optrepro.optim.factory import build_base_optimizer
from optrepro.train import run


@dataclass(frozen=True)
class Case:
    name: str
    overrides: tuple[str, ...]
    steps: int
    repetitions: int


CASES = (
    Case("mlp on digits", ("dataset=digits", "model=mlp", "train.batch_size=32"), steps=40, repetitions=9),
    Case("small_cnn cpu tier", ("+repro=sam_fmnist_cpu_sgd", *FASHION_MNIST_SHAPED), steps=30, repetitions=7),
)
QUICK_STEPS, QUICK_REPETITIONS = 3, 2


def case_config(case: Case, steps: int, runs_dir: str):
    limits = ["limits.max_epochs=2", f"limits.train_batches={steps}", "limits.eval_batches=1"]
    return compose_config(
        [
            *case.overrides,
            "logger=csv",
            "skip_finished=false",
            f"paths.runs_dir={runs_dir}",
            "hardware.cpu_threads=1",
            *limits,
        ]
    )


def stack_time_per_step(cfg) -> tuple[float, float]:
    """(wall, CPU) seconds per step of the stack's second epoch."""
    record = run(cfg)
    if record["status"] != "finished":
        raise RuntimeError(f"the stack run ended {record['status']}: {record['error']}")
    timing = record["timing"]
    return timing["last_epoch_time_per_step_s"], timing["last_epoch_cpu_time_per_step_s"]


def bare_time_per_step(cfg, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step of the hand-written loop's second epoch."""
    torch.use_deterministic_algorithms(bool(cfg.hardware.deterministic))  # as the Trainer sets it for the stack
    torch.manual_seed(int(cfg.seed))
    datamodule, data = builders.build_data(cfg)
    datamodule.place_on(torch.device("cpu"))
    net = builders.build_net(cfg, data).train()
    optimizer = build_base_optimizer(cfg.optimizer, net)
    batches = datamodule.train_dataloader()

    def epoch(number: int) -> None:
        for inputs, targets, _ in itertools.islice(batches.epoch_batches(number), steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(inputs), targets).backward()
            optimizer.step()

    epoch(0)  # warm-up, as the stack's first epoch
    wall, cpu = timed_both_clocks(lambda: epoch(1))
    return wall / steps, cpu / steps


class FloorModule(pl.LightningModule):
    """The bare loop's step as a LightningModule: nothing but what one optimizer step per batch needs."""

    def __init__(self, net: torch.nn.Module, optimizer_cfg) -> None:
        super().__init__()
        self.net, self.optimizer_cfg, self.automatic_optimization = net, optimizer_cfg, False

    def training_step(self, batch, _index) -> None:
        inputs, targets, _ = batch
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(F.cross_entropy(self.net(inputs), targets))
        optimizer.step()

    def configure_optimizers(self):
        return build_base_optimizer(self.optimizer_cfg, self.net)


class SecondEpochClock(pl.Callback):
    """(wall, CPU) seconds of the second training epoch, as the stack's record times it."""

    def on_train_epoch_start(self, trainer, _module) -> None:
        self.start = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer, _module) -> None:
        if trainer.current_epoch == 1:
            self.seconds = (time.perf_counter() - self.start[0], time.process_time() - self.start[1])


class EpochBatches:
    """The TensorDataModule's batches of one epoch number per pass, with a length (Lightning counts the steps)."""

    def __init__(self, batches, steps: int) -> None:
        self.batches, self.steps, self.epoch = batches, steps, 0

    def __iter__(self):
        self.epoch += 1
        return itertools.islice(self.batches.epoch_batches(self.epoch - 1), self.steps)

    def __len__(self) -> int:
        return self.steps


def floor_time_per_step(cfg, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step of the bare step in a bare Lightning fit, second epoch."""
    torch.manual_seed(int(cfg.seed))
    datamodule, data = builders.build_data(cfg)
    datamodule.place_on(torch.device("cpu"))
    clock = SecondEpochClock()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        deterministic=bool(cfg.hardware.deterministic),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[clock],
    )
    module = FloorModule(builders.build_net(cfg, data), cfg.optimizer)
    trainer.fit(module, train_dataloaders=EpochBatches(datamodule.train_dataloader(), steps))
    return clock.seconds[0] / steps, clock.seconds[1] / steps


def compare(case: Case, steps: int, repetitions: int, runs_dir: str) -> dict[str, float]:
    """Median steps-per-second ratios of one case by clock (the inverse of the time-per-step ratios): stack/bare,
    and floor/bare, the most any stack that gives Lightning one step per batch reaches."""
    cfg = case_config(case, steps, runs_dir)
    times = interleaved(
        {
            "stack": lambda: stack_time_per_step(cfg),
            "bare": lambda: bare_time_per_step(cfg, steps),
            "floor": lambda: floor_time_per_step(cfg, steps),
        },
        repetitions,
    )
    ratios = {}
    for position, clock in enumerate(("wall", "cpu")):
        by_name = {name: [pair[position] for pair in pairs] for name, pairs in times.items()}
        shown = ", ".join(f"{name} {1e3 * statistics.median(v):.2f} ms/step" for name, v in by_name.items())
        print(f"{case.name} ({steps} steps, median of {repetitions}, {clock} time): {shown}")
        ratios[clock] = {
            "stack/bare": median_ratio(by_name["bare"], by_name["stack"]),
            "lightning floor/bare": median_ratio(by_name["bare"], by_name["floor"]),
        }
    return ratios


def main() -> None:
    args = parse_args(__doc__)
    quiet_lightning()
    torch.set_num_threads(1)
    describe_machine()
    with tempfile.TemporaryDirectory() as runs_dir:
        ratios = {
            case.name: compare(
                case,
                QUICK_STEPS if args.quick else case.steps,
                QUICK_REPETITIONS if args.quick else case.repetitions,
                runs_dir,
            )
            for case in CASES
        }
    for clock in ("wall", "cpu"):
        for name, by_clock in ratios.items():
            for label, value in by_clock[clock].items():
                print_ratio(f"{label} steps per second ({clock} time), {name}", value)


if __name__ == "__main__":
    main()
