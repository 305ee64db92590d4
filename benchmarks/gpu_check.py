"""The one-command GPU check: SAM/SGD throughput of WRN-28-10 at batch 256 with the product's own step code.

Why: the full tier (`+repro=sam_cifar`, 200 epochs of WRN-28-10) has never run on a GPU, and GPU time comes in
minutes. This measures, in one process and under a time budget, what a first GPU session needs to know:
- steps/s of SGD, SAM (m-sharpness off) and SAM with the preset's m = 32, in fp32 and bf16 autocast, with and
  without channels_last and `torch.compile` (the model built by `optrepro.builders.build_net`, the optimizer and
  step strategy by `optrepro.optim.factory.build_optimizer`, stepped on a `LocalBackend`: the figures are the
  product's); the three methods of one setting are timed interleaved, medians of repetitions;
- model FLOP utilisation: FLOPs of one forward+backward counted by torch.utils.flop_counter (SGD: 1, SAM: 2 per
  step), against the card's dense bf16 peak from a table of known cards (fp32 rows too, so they compare);
- data time as a fraction of an SGD step (data ms / step ms): the TensorDataModule path (uint8 CIFAR-shaped
  data held on the device, pad-4 crop + flip), as every CIFAR run uses;
- the projected wall time of `+repro=sam_cifar` (200 epochs x 195 steps + a test pass per epoch) in the preset's
  own hardware setting (fp32, channels_last, no compile) and in the fastest measured one;
- SAF/SGD and MESA/SGD time per step on the same model and batch at their last epoch (trajectory terms on).
Settings are measured in priority order; once the budget is spent the rest are listed as skipped.

Machine: one CUDA GPU (an H100/H200 runs all of it in about 5 minutes), no internet, no dataset. `--dry-run`
takes the same code paths on the CPU in seconds: WRN-10-1 on 8 x 8 images, batch 64, one timed step per
setting, every setting (no budget), torch.compile disabled.
Command: `bash benchmarks/gpu_check.sh OUT_DIR` (runs `pytest -m gpu` first), or
`python benchmarks/gpu_check.py OUT_DIR [--dry-run]`. Prints one summary table; writes OUT_DIR/gpu_check.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from common import compose_config, interleaved, quiet_lightning

from optrepro import builders
from optrepro.optim.backend import LocalBackend
from optrepro.optim.factory import build_optimizer

# Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, without sparsity), matched in order against
# torch.cuda.get_device_name(); the first key contained in the name wins.
BF16_PEAK_TFLOPS = {
    "H100 PCIe": 756.5,
    "H100 NVL": 835.5,
    "H100": 989.4,
    "H200": 989.4,
    "H800": 989.4,
    "B200": 2250.0,
    "A100": 312.0,
    "A800": 312.0,
    "L40S": 362.1,
    "L40": 181.0,
    "L4": 121.0,
    "RTX 4090": 165.2,
}
CIFAR_TRAIN, CIFAR_TEST, EPOCHS = 50_000, 10_000, 200  # +repro=sam_cifar
SYNTHETIC_CIFAR = (
    "dataset=synthetic",
    "dataset.shape=[3,32,32]",
    "dataset.num_classes=10",
    "dataset.num_test=256",
    "++dataset.augment={crop_padding:4,flip:true,cutout:0,pad_mode:zeros}",
)
METHODS = {
    "sgd": ("+repro=sam_cifar_sgd",),
    "sam": ("+repro=sam_cifar", "optimizer.m_sharpness=null"),
    "sam_m32": ("+repro=sam_cifar",),
}
TRAJECTORY = {"saf": ("+repro=sam_cifar_sgd", "optimizer=saf"), "mesa": ("+repro=sam_cifar_sgd", "optimizer=mesa")}
PASSES = {"sgd": 1, "sam": 2, "sam_m32": 2}  # forward+backward passes per step


@dataclass(frozen=True)
class Sizes:
    """What a real check and a dry run differ in."""

    overrides: tuple[str, ...]  # model and data shrunk for the dry run
    batch: int
    samples: int
    warmup: int
    steps: int
    repetitions: int
    budget_s: float


FULL = Sizes((), 256, 10_240, 3, 10, 3, 240.0)
DRY = Sizes(("model.depth=10", "model.widen_factor=1", "dataset.shape=[3,8,8]"), 64, 128, 1, 1, 1, math.inf)


@dataclass(frozen=True)
class Setting:
    precision: str  # fp32 | bf16 (autocast)
    channels_last: bool
    compile: bool

    @property
    def label(self) -> str:
        return f"{self.precision}{' cl' if self.channels_last else ''}{' compile' if self.compile else ''}"


PRESET_SETTING = Setting("fp32", True, False)  # hardware=gpu, as +repro=sam_cifar runs
# Most informative first: the preset's own setting and the other eager ones (seconds each), then the compiled ones
# (a minute or two of compilation each, so the budget may cut the last).
SETTINGS = [
    PRESET_SETTING,
    Setting("bf16", True, False),
    Setting("fp32", False, False),
    Setting("bf16", False, False),
    Setting("bf16", True, True),
    Setting("fp32", True, True),
    Setting("bf16", False, True),
    Setting("fp32", False, True),
]


@dataclass
class Report:
    device: str
    dry_run: bool
    bf16_peak_tflops: float | None
    batch: int
    flops_per_sample: float = math.nan
    steps: list[dict] = field(default_factory=list)
    data_ms_per_batch: float = math.nan
    data_fraction_of_step: float = math.nan
    eval_ms_per_batch: float = math.nan
    ratios: dict[str, float] = field(default_factory=dict)
    projected_sam_cifar_h: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    gpu_tests: dict = field(default_factory=dict)
    elapsed_s: float = math.nan


def bf16_peak(device_name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in device_name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def method_config(method_overrides: tuple[str, ...], sizes: Sizes):
    """The composed config of one method (composition takes a few tenths of a second: once per method)."""
    return compose_config([*method_overrides, *SYNTHETIC_CIFAR, *sizes.overrides, f"train.batch_size={sizes.batch}"])


class Stepper:
    """One method's model, optimizer and real step strategy on a fixed device-resident batch."""

    def __init__(self, method_overrides, setting: Setting, sizes: Sizes, batch, data, device, net=None) -> None:
        cfg = method_config(tuple(method_overrides), sizes).copy()
        cfg.hardware.channels_last, cfg.hardware.compile = setting.channels_last, setting.compile
        torch.manual_seed(int(cfg.seed))
        self.net = net if net is not None else builders.build_net(cfg, data).to(device).train()
        _, self.strategy = build_optimizer(
            cfg.optimizer,
            self.net,
            num_train_samples=data.num_train,
            num_classes=data.num_classes,
            accumulate=int(cfg.train.accumulate),
            grad_clip=cfg.train.grad_clip,
        )
        dtype = torch.bfloat16 if setting.precision == "bf16" else None
        self.backend = LocalBackend(self.net, autocast_dtype=dtype, device_type=device.type)
        layout = torch.channels_last if setting.channels_last else torch.contiguous_format
        x, y, idx = batch  # the input in the setting's memory layout, as ClassifierModule hands it to the model
        self.batch, self.device = (x.contiguous(memory_format=layout), y, idx), device
        self.epoch = EPOCHS - 1  # SAF's and MESA's trajectory terms are on at the last epoch

    def seconds_per_step(self, steps: int) -> float:
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.strategy.training_step(self.backend, self.batch, epoch=self.epoch)
        synchronize(self.device)
        return (time.perf_counter() - start) / steps


def flops_per_sample(net, batch) -> float:
    """FLOPs of one forward+backward per sample (torch.utils.flop_counter counts matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y, _ = batch
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(y)


def time_data(datamodule, device, batches: int) -> float:
    """Seconds per training batch of the tensor loader (indexing, augmentation, normalisation on the device)."""
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)  # warm-up: permutation and augmentation draws
    synchronize(device)
    start, count = time.perf_counter(), 0
    for _ in range(batches):
        try:
            next(iterator)
        except StopIteration:
            iterator = iter(loader)
            next(iterator)
        count += 1
    synchronize(device)
    return (time.perf_counter() - start) / count


def time_eval(net, batch, setting: Setting, device, steps: int) -> float:
    dtype = torch.bfloat16 if setting.precision == "bf16" else torch.float32
    net.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=setting.precision == "bf16"):
        net(batch[0])
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            net(batch[0])
        synchronize(device)
    net.train()
    return (time.perf_counter() - start) / steps


def projected_hours(step_s: float, data_s: float, eval_batch_s: float, batch: int) -> float:
    """Wall hours of 200 epochs: 195 steps (the 80-image remainder dropped) plus one test pass per epoch."""
    steps_per_epoch = CIFAR_TRAIN // batch
    eval_batches = math.ceil(CIFAR_TEST / batch)
    return EPOCHS * (steps_per_epoch * (step_s + data_s) + eval_batches * eval_batch_s) / 3600


def save(report: Report, out_dir: Path) -> None:
    """Written after every setting, so a run cut short by its outer timeout still leaves its figures."""
    (out_dir / "gpu_check.json").write_text(json.dumps(asdict(report), indent=2))


def measure(out_dir: Path, sizes: Sizes, device: torch.device, gpu_tests: dict) -> Report:
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = Report(name, sizes is DRY, bf16_peak(name), sizes.batch, gpu_tests=gpu_tests)
    data_cfg = compose_config(
        [
            *METHODS["sgd"],
            *SYNTHETIC_CIFAR,
            *sizes.overrides,
            "hardware.channels_last=true",
            f"dataset.num_samples={sizes.samples}",
            f"train.batch_size={sizes.batch}",
        ]
    )
    datamodule, data = builders.build_data(data_cfg)
    datamodule.place_on(device)
    batch = next(iter(datamodule.train_dataloader()))
    data = builders.DataInfo(data.num_classes, data.input_shape, CIFAR_TRAIN)  # SAF's memory sized as CIFAR-10's
    report.data_ms_per_batch = 1e3 * time_data(datamodule, device, 4 * sizes.steps)
    sam_cifar_s: dict[str, float] = {}
    for setting in SETTINGS:
        if time.perf_counter() - started > sizes.budget_s:
            report.skipped.append(setting.label)
            continue
        times, eval_s = measure_setting(report, setting, sizes, batch, data, device)
        sam_cifar_s[setting.label] = statistics.median(times["sam_m32"])
        report.ratios[f"sam/sgd {setting.label}"] = statistics.median(times["sam"]) / statistics.median(times["sgd"])
        report.ratios[f"sam_m32/sam {setting.label}"] = sam_cifar_s[setting.label] / statistics.median(times["sam"])
        if setting == PRESET_SETTING:
            report.eval_ms_per_batch = 1e3 * eval_s
            report.data_fraction_of_step = report.data_ms_per_batch / (1e3 * statistics.median(times["sgd"]))
            report.ratios.update(trajectory_ratios(sizes, batch, data, device))
        fastest = min(sam_cifar_s, key=sam_cifar_s.get)
        report.projected_sam_cifar_h = {
            label: projected_hours(
                sam_cifar_s[key], report.data_ms_per_batch / 1e3, report.eval_ms_per_batch / 1e3, sizes.batch
            )
            for label, key in (("preset (fp32 cl)", PRESET_SETTING.label), (f"fastest ({fastest})", fastest))
        }
        report.elapsed_s = time.perf_counter() - started
        save(report, out_dir)
    return report


def measure_setting(report: Report, setting: Setting, sizes: Sizes, batch, data, device):
    """Per-step seconds of SGD, SAM and SAM m=32 (interleaved) and of a test batch; appends the table rows."""
    net, steppers = None, {}
    for method, overrides in METHODS.items():  # one (compiled) network per setting, shared by the methods
        steppers[method] = Stepper(overrides, setting, sizes, batch, data, device, net)
        net = steppers[method].net
    if math.isnan(report.flops_per_sample):
        report.flops_per_sample = flops_per_sample(net, batch)
    for stepper in steppers.values():
        stepper.seconds_per_step(sizes.warmup)
    times = interleaved(
        {m: lambda s=s: s.seconds_per_step(sizes.steps) for m, s in steppers.items()}, sizes.repetitions
    )
    eval_s = time_eval(net, steppers["sgd"].batch, setting, device, sizes.steps)
    for method, values in times.items():
        seconds = statistics.median(values)
        flops = PASSES[method] * report.flops_per_sample * sizes.batch
        mfu = flops / seconds / (report.bf16_peak_tflops * 1e12) if report.bf16_peak_tflops else None
        report.steps.append(
            {
                "method": method,
                **asdict(setting),
                "m_sharpness": 32 if method == "sam_m32" else None,
                "batch": sizes.batch,
                "ms_per_step": 1e3 * seconds,
                "steps_per_s": 1 / seconds,
                "mfu_vs_bf16_peak": mfu,
            }
        )
    if device.type == "cuda":
        del steppers, net
        torch.cuda.empty_cache()
    return times, eval_s


def trajectory_ratios(sizes: Sizes, batch, data, device) -> dict[str, float]:
    """SAF/SGD and MESA/SGD per step in the preset's setting (fp32, channels_last), timed interleaved."""
    steppers = {
        m: Stepper(o, PRESET_SETTING, sizes, batch, data, device)
        for m, o in {"sgd": METHODS["sgd"], **TRAJECTORY}.items()
    }
    for stepper in steppers.values():
        stepper.seconds_per_step(sizes.warmup)
    times = interleaved(
        {m: lambda s=s: s.seconds_per_step(sizes.steps) for m, s in steppers.items()}, sizes.repetitions
    )
    sgd = statistics.median(times["sgd"])
    return {f"{m}/sgd {PRESET_SETTING.label}": statistics.median(times[m]) / sgd for m in TRAJECTORY}


def print_table(report: Report) -> None:
    print(
        f"GPU check on {report.device}{' (dry run)' if report.dry_run else ''}: WRN-28-10, batch {report.batch}, "
        f"{report.flops_per_sample / 1e9:.2f} GFLOP per sample forward+backward, bf16 peak "
        f"{report.bf16_peak_tflops or 'unknown'} TFLOP/s"
    )
    print(f"{'setting':<20} {'method':<8} {'ms/step':>9} {'steps/s':>8} {'MFU':>6}")
    for row in report.steps:
        setting = Setting(row["precision"], row["channels_last"], row["compile"]).label
        mfu = f"{100 * row['mfu_vs_bf16_peak']:.1f}%" if row["mfu_vs_bf16_peak"] is not None else "-"
        print(f"{setting:<20} {row['method']:<8} {row['ms_per_step']:>9.1f} {row['steps_per_s']:>8.2f} {mfu:>6}")
    print(
        f"data: {report.data_ms_per_batch:.2f} ms/batch, {100 * report.data_fraction_of_step:.1f}% of an SGD step "
        f"(fp32 cl); test pass {report.eval_ms_per_batch:.1f} ms/batch"
    )
    for label, hours in report.projected_sam_cifar_h.items():
        print(f"+repro=sam_cifar (200 epochs) projected, {label}: {hours:.2f} h")
    for label, ratio in report.ratios.items():
        print(f"RATIO {label}: {ratio:.3f}")
    if report.skipped:
        print(f"skipped (time budget): {', '.join(report.skipped)}")
    tests = report.gpu_tests
    if tests:
        print(f"pytest -m gpu: exit {tests.get('exit_code')} ({tests.get('summary', '')})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for gpu_check.json")
    parser.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, in seconds")
    parser.add_argument("--gpu-tests-exit", type=int, default=None, help="exit code of `pytest -m gpu` (the .sh)")
    parser.add_argument("--gpu-tests-summary", default="", help="its last summary line")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device is visible; run on a GPU node, or pass --dry-run to check the script")
    quiet_lightning()
    if args.dry_run:
        torch._dynamo.config.disable = True  # torch.compile becomes a no-op: the CPU's inductor build takes minutes
    device = torch.device("cpu" if args.dry_run else "cuda")
    gpu_tests = (
        {} if args.gpu_tests_exit is None else {"exit_code": args.gpu_tests_exit, "summary": args.gpu_tests_summary}
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    report = measure(args.out_dir, DRY if args.dry_run else FULL, device, gpu_tests)
    print_table(report)


if __name__ == "__main__":
    main()
