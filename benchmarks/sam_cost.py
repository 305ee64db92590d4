"""Time per step of SAM, SAF, MESA and GAM relative to SGD, on the same model and the same batch.

Why: the SAF paper's efficiency claims (reproductions/saf/claims.yaml: SAF/SGD <= 1.10, MESA/SGD <= 1.25,
SAM/SGD <= 2.05) are checked on run records, where each method ran at another time under other load; this
measures the same steps side by side, so the ratio is the methods' cost alone. SAM's two passes bound its ratio
from below at about 2.0.

Each method is the cpu tier preset of its arm (`+repro=sam_fmnist_cpu_sgd`, `sam_fmnist_cpu`, `saf_fmnist_cpu`,
`mesa_fmnist_cpu`, `gam_fmnist_cpu`: small CNN width 16, batch 128, the presets' hyperparameters), built by
`optrepro.builders.build_net` (same seed, so the same initial weights) and
`optrepro.optim.factory.build_optimizer`, and stepped by its real StepStrategy on a
`optrepro.optim.backend.LocalBackend` in a bare loop. The batch is the first training batch of the tier's data
shape (common.FASHION_MNIST_SHAPED), reused for every step. Steps are taken at the setting's last epoch, so SAF's
and MESA's trajectory terms are on (as in the records' `last_epoch_time_per_step_s`). Warm-up steps are untimed;
then each repetition times K steps of every method, in a rotated order; ratios are medians of the per-repetition
ratios.

Machine: a CPU (no GPU needed); defaults sized for an idle 2-core machine, about 1 minute; torch uses its default
thread count (set OMP_NUM_THREADS to change it). Inputs: none.
Command: `python benchmarks/sam_cost.py` (`--quick`: seconds, to check that it runs). Prints SAM/SGD last.
"""
from __future__ import annotations

import statistics

import torch
from common import (
    FASHION_MNIST_SHAPED,
    compose_config,
    describe_machine,
    interleaved,
    median_ratio,
    parse_args,
    print_ratio,
    timed,
)

from optrepro import builders
from optrepro.optim.backend import LocalBackend
from optrepro.optim.factory import build_optimizer

PRESETS = {
    "sgd": "sam_fmnist_cpu_sgd",
    "sam": "sam_fmnist_cpu",
    "saf": "saf_fmnist_cpu",
    "mesa": "mesa_fmnist_cpu",
    "gam": "gam_fmnist_cpu",
}
TARGETS = {
    "sam": "<= 2.05; two passes put it at 2.0 at best", "saf": "<= 1.10", "mesa": "<= 1.25", "gam": "none stated",
}
STEPS, REPETITIONS, WARMUP_STEPS = 8, 9, 3
QUICK_STEPS, QUICK_REPETITIONS, QUICK_WARMUP_STEPS = 1, 2, 1


class MethodSteps:
    """One method's model, optimizer and strategy, stepping on a fixed batch."""

    def __init__(self, preset: str, batch, data: builders.DataInfo, warmup_steps: int) -> None:
        cfg = compose_config([f"+repro={preset}", *FASHION_MNIST_SHAPED])
        torch.manual_seed(int(cfg.seed))
        net = builders.build_net(cfg, data).train()
        _, self.strategy = build_optimizer(
            cfg.optimizer, net, num_train_samples=data.num_train, num_classes=data.num_classes,
            accumulate=int(cfg.train.accumulate), grad_clip=cfg.train.grad_clip,
        )
        self.backend = LocalBackend(net)
        self.batch = batch
        self.epoch = builders.epochs_to_run(cfg) - 1
        self.steps(warmup_steps)

    def steps(self, count: int) -> None:
        for _ in range(count):
            self.strategy.training_step(self.backend, self.batch, epoch=self.epoch)


def shared_batch():
    """The first training batch of the setting every preset shares, and what the builders need to know of it."""
    datamodule, data = builders.build_data(compose_config([f"+repro={PRESETS['sgd']}", *FASHION_MNIST_SHAPED]))
    datamodule.place_on(torch.device("cpu"))
    return next(iter(datamodule.train_dataloader())), data


def main() -> None:
    args = parse_args(__doc__)
    describe_machine()
    steps = QUICK_STEPS if args.quick else STEPS
    batch, data = shared_batch()
    methods = {
        name: MethodSteps(preset, batch, data, QUICK_WARMUP_STEPS if args.quick else WARMUP_STEPS)
        for name, preset in PRESETS.items()
    }
    times = interleaved(
        {name: lambda method=method: timed(lambda: method.steps(steps)) / steps for name, method in methods.items()},
        QUICK_REPETITIONS if args.quick else REPETITIONS,
    )
    ratios = {name: median_ratio(times[name], times["sgd"]) for name in TARGETS}
    print(f"batch {len(batch[1])}, {steps} steps per measurement, median of {len(times['sgd'])}:")
    print(f"  sgd: {1e3 * statistics.median(times['sgd']):.1f} ms/step")
    for name, ratio in ratios.items():
        print(f"  {name}: {1e3 * statistics.median(times[name]):.1f} ms/step, {name}/sgd {ratio:.3f} "
              f"(target {TARGETS[name]})")
    for name in ("gam", "mesa", "saf", "sam"):
        print_ratio(f"{name}/sgd time per step", ratios[name])


if __name__ == "__main__":
    main()
