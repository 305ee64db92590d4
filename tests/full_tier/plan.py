"""How each `full` preset is shrunk to a CPU run that still crosses an epoch boundary the way the real one does.

Only the dataset size, the batch, the device/process count and step limits change. The batch is cut to what a
CPU core trains in seconds (WRN-28-10 costs ~1 s per image forward+backward on one core, so SAM's real 256 would
take ~8 min a step); the epoch keeps the *structure* of the real one: a full global batch followed by a short
last batch whose size leaves the same remainder modulo the split unit (m-sharpness x processes) and is the same
fraction of a batch, rounded. CIFAR-10 under `sam_cifar` (256, m=32): 50,000 mod 256 = 80 and 80 mod 32 = 16, so
a 48-image epoch at batch 32 ends in the same 16 images m=32 cannot split. Cheap models keep the preset's batch
and the real remainder (`sam_label_noise`: 256 + 80 images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig

# Training-split sizes of the real datasets; the generated copies keep their remainder modulo the batch.
REAL_TRAIN_SIZES = {
    "cifar10": 50_000,
    "cifar100": 50_000,
    "fashion_mnist": 60_000,
    "imagenet": 1_281_167,
    "mnist10": 60_000,
}  # mnist10: MNIST read by saddle_free_newton's own loader, then downscaled
# Per-device batch on the CPU for models too heavy to train at the preset's batch (None: keep the preset's).
# deepzero_resnet20: DeepZero's sparse CGE spends ~28k ResNet-20 forward passes per step, ~4 ms each at 2 images.
CPU_DEVICE_BATCH = {"wrn28_10": 8, "resnet18": 16, "resnet50": 4, "deepzero_resnet20": 2}
CPU_PROCESSES = 2  # a multi-device preset runs as this many gloo processes
TEST_IMAGES_PER_PROCESS = 4


@dataclass(frozen=True)
class CpuPlan:
    """One full preset as a CPU run: overrides, generated dataset size and the steps its epochs must take."""

    preset: str
    processes: int
    batch_size: int  # global
    num_train: int
    num_test: int
    epochs: int
    steps_per_epoch: int
    real_remainder: int  # the real epoch's short last batch (global; per rank for sampler-sharded ImageNet)
    remainder: int  # the generated epoch's short last batch, same meaning
    size_overrides: tuple[str, ...] = ()  # dataset size for data a paper's own loader draws (no files to write)

    def overrides(self, data_path: str | None) -> list[str]:
        """The run's command-line overrides on top of `+repro=<preset>` (device, batch, data, step limits)."""
        out = [
            f"+repro={self.preset}",
            "hardware.accelerator=cpu",
            f"hardware.devices={self.processes}",
            "hardware.num_nodes=1",
            f"train.batch_size={self.batch_size}",
            f"limits.max_epochs={self.epochs}",
            "logger=csv",
        ]
        if data_path is not None:
            out.append(f"dataset.path={data_path}")
        return out + list(self.size_overrides)


def drops_last(cfg: DictConfig) -> bool:
    """Whether the run's training epochs drop their short last batch (the SAM and SAF full presets do)."""
    return bool(cfg.train.drop_last)


def grown_epoch_steps(record: dict, plan: CpuPlan, drop_last: bool) -> int | None:
    """Steps of one epoch of a task that grew the training set after loading it, from the `train_samples` its
    record's `extra` block holds (reproductions/useful: the slow-learnable examples' copies, a number k-means
    decides during the run, so no plan can know it before); None for every other task (the plan's own count)."""
    samples = record["extra"].get("train_samples")
    if samples is None:
        return None
    assert plan.processes == 1 and samples >= plan.num_train, (samples, plan)
    return samples // plan.batch_size + (samples % plan.batch_size > 0 and not drop_last)


def split_unit(cfg: DictConfig, processes: int) -> int:
    """Samples a global batch must be a multiple of: one m-sharpness sub-batch per process, else one per process."""
    return processes * int(cfg.optimizer.get("m_sharpness") or 1)


def scaled_remainder(real: int, real_batch: int, batch: int, unit: int) -> int | None:
    """The short last batch at `batch`: the real one's fraction of a batch, rounded, raised to its residue
    modulo `unit`; None when that does not fit below `batch` (the caller doubles the batch)."""
    if real == 0:
        return 0
    remainder = max(1, math.floor(real * batch / real_batch + 0.5))
    remainder += (real - remainder) % unit
    return remainder if remainder < batch else None


def paper_file_loader(cfg: DictConfig):
    """The `dataset.loader` of a paper's own files when it can write a generated sample of them: a function with
    `real_train_size(dataset_cfg)` (training samples of the real files) and `write_sample(folder, dataset_cfg,
    num_train)` (files in the real format, at least num_train training samples, returns dataset.path), e.g.
    reproductions/samformer/series.py; else None."""
    if cfg.dataset.get("loader") is None:
        return None
    from optrepro.data.registry import dataset_loader

    loader = dataset_loader(cfg.dataset.loader)
    return loader if hasattr(loader, "real_train_size") and hasattr(loader, "write_sample") else None


def plan_epochs(cfg: DictConfig) -> int:
    """Two epochs; a trajectory method (SAF, MESA) runs until its KL term is on for one epoch (epoch > E_start)."""
    if cfg.optimizer.get("step") == "trajectory":
        return int(cfg.optimizer.start_epoch) + 2
    return 2


def plan_for(preset: str, cfg: DictConfig) -> CpuPlan:
    """The CPU run of classification preset `preset` (composed as `cfg`) on generated data."""
    real_world = int(cfg.hardware.devices) * int(cfg.hardware.num_nodes)
    processes = 1 if real_world == 1 else CPU_PROCESSES
    real_batch = int(cfg.train.batch_size)
    unit = split_unit(cfg, processes)
    model = cfg.model.get("name")
    device_batch = CPU_DEVICE_BATCH.get(model)
    if device_batch is None:
        batch = real_batch  # cheap enough: the preset's own batch
    else:
        per_device_unit = unit // processes
        batch = processes * per_device_unit * math.ceil(device_batch / per_device_unit)
    epochs = plan_epochs(cfg)
    if cfg.dataset.name == "imagenet":
        return imagenet_plan(preset, cfg, processes, real_world, batch, epochs)
    if cfg.dataset.get("n_train"):  # drawn by a paper's own loader (rnn_clipping): fewer sequences, same remainder
        remainder = int(cfg.dataset.n_train) % real_batch
        num_test = TEST_IMAGES_PER_PROCESS * processes
        return CpuPlan(
            preset,
            processes,
            real_batch,
            real_batch + remainder,
            num_test,
            epochs,
            1 + (remainder > 0 and not drops_last(cfg)),
            remainder,
            remainder,
            (f"dataset.n_train={real_batch + remainder}", f"dataset.n_test={num_test}"),
        )
    if (loader := paper_file_loader(cfg)) is not None:  # a paper's files (samformer's CSVs): real remainder, subset
        remainder = loader.real_train_size(cfg.dataset) % real_batch
        num_train = real_batch + remainder
        return CpuPlan(
            preset,
            processes,
            real_batch,
            num_train,
            TEST_IMAGES_PER_PROCESS * processes,
            epochs,
            1 + (remainder > 0 and not drops_last(cfg)),
            remainder,
            remainder,
            (f"dataset.train_subset={num_train}",),
        )
    if cfg.dataset.name not in REAL_TRAIN_SIZES:  # generated by the product itself (grokking's modular addition)
        return CpuPlan(preset, processes, real_batch, 0, 0, epochs, 1, 0, 0)
    if cfg.dataset.get("train_subset"):  # a preset that keeps a subset (jacobian_descent: 1024 images) trains on that
        subset = int(cfg.dataset.train_subset)
        remainder = subset % real_batch
        num_train = batch + (remainder and max(1, math.floor(remainder * batch / real_batch + 0.5)))
        steps = 1 + (num_train > batch and not drops_last(cfg))
        return CpuPlan(
            preset,
            processes,
            batch,
            num_train,
            TEST_IMAGES_PER_PROCESS * processes,
            epochs,
            steps,
            remainder,
            num_train - batch,
            (f"dataset.train_subset={num_train}",),
        )
    real_remainder = REAL_TRAIN_SIZES[cfg.dataset.name] % real_batch
    while (remainder := scaled_remainder(real_remainder, real_batch, batch, unit)) is None:
        batch *= 2
    assert remainder == 0 or remainder >= processes, "every process needs a sample of the short batch"
    steps = 1 + (remainder > 0 and not drops_last(cfg))
    return CpuPlan(
        preset,
        processes,
        batch,
        batch + remainder,
        TEST_IMAGES_PER_PROCESS * processes,
        epochs,
        steps,
        real_remainder,
        remainder,
    )


def imagenet_plan(preset: str, cfg: DictConfig, processes: int, real_world: int, batch: int, epochs: int) -> CpuPlan:
    """ImageNet is sharded by a DistributedSampler first, then batched per rank: the short batch that matters is
    each rank's tail, ceil(N / world) mod the per-device batch (402 of 512 for 8 x 512)."""
    real_device_batch = int(cfg.train.batch_size) // real_world
    real_tail = math.ceil(REAL_TRAIN_SIZES["imagenet"] / real_world) % real_device_batch
    device_batch = batch // processes
    tail = scaled_remainder(real_tail, real_device_batch, device_batch, 1)
    assert tail is not None
    steps = 1 + (tail > 0 and not drops_last(cfg))
    return CpuPlan(
        preset,
        processes,
        batch,
        processes * (device_batch + tail),
        TEST_IMAGES_PER_PROCESS * processes,
        epochs,
        steps,
        real_tail,
        tail,
    )
