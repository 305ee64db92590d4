"""Images per second of the tensor batch loader vs a per-sample torchvision DataLoader, and its share of a step.

Why: optrepro keeps in-memory datasets as uint8 tensors and augments whole batches with tensor ops
(TensorDataModule / TrainBatches) instead of the usual per-sample PIL pipeline; this measures what that buys,
and checks that feeding the data is a negligible part of a training step.

Data: CIFAR-shaped synthetic uint8 images (10k x 3x32x32, 10 classes, `dataset=synthetic`), batch 128, the CIFAR
augmentation (pad-4 zero-padded random crop + horizontal flip). Contenders, each timed over one epoch:
- tensor: `optrepro.builders.build_data` -> TensorDataModule -> TrainBatches (what every run uses);
- torchvision with num_workers 0 and 2: a Dataset serving the same images as PIL images, as
  torchvision.datasets.CIFAR10 does, through RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor +
  Normalize (same mean/std), a shuffling DataLoader (persistent workers);
- step: one SGD training step of the small CNN (`model=small_cnn`, width 32) on one batch of the tensor loader,
  through the real StandardStep on a LocalBackend.
One untimed warm-up epoch (and step) each, then interleaved repetitions; ratios are medians of per-repetition
ratios. The speedup is against the faster torchvision setup of each repetition.

Machine: a CPU (no GPU needed); defaults sized for an idle 2-core machine, about 1 minute; torch uses its default
thread count (set OMP_NUM_THREADS to change it). Inputs: none.
Command: `python benchmarks/data_pipeline.py` (`--quick`: 1k images, seconds, to check that it runs).
Prints the data time as a fraction of a step (target <= 0.02), then the speedup (target >= 10) last.
"""

from __future__ import annotations

import statistics

import torch
from common import (
    compose_config,
    describe_machine,
    interleaved,
    median_ratio,
    parse_args,
    print_ratio,
    timed,
)
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from optrepro import builders
from optrepro.optim.backend import LocalBackend
from optrepro.optim.factory import build_optimizer

CIFAR_SHAPED = (
    "dataset=synthetic",
    "dataset.shape=[3,32,32]",
    "dataset.num_classes=10",
    "dataset.num_test=128",
    "++dataset.augment={crop_padding:4,flip:true}",
    "model=small_cnn",
    "optimizer=sgd",
    "train.batch_size=128",
)
SAMPLES, REPETITIONS, STEPS = 10_000, 5, 5
QUICK_SAMPLES, QUICK_REPETITIONS, QUICK_STEPS = 1_024, 2, 1
WORKER_COUNTS = (0, 2)


class PilImages(Dataset):
    """Samples as torchvision's CIFAR10 dataset serves them: an HWC uint8 array -> PIL image -> transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def torchvision_loader(splits, batch_size: int, workers: int) -> DataLoader:
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(splits.mean, splits.std),
        ]
    )
    return DataLoader(
        PilImages(splits.x_train, splits.y_train, transform),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )


def epoch_time_per_image(batches) -> float:
    images = 0

    def consume() -> None:
        nonlocal images
        images = sum(len(batch[1]) for batch in batches)

    return timed(consume) / images


def main() -> None:
    args = parse_args(__doc__)
    describe_machine()
    samples = QUICK_SAMPLES if args.quick else SAMPLES
    steps = QUICK_STEPS if args.quick else STEPS
    cfg = compose_config([*CIFAR_SHAPED, f"dataset.num_samples={samples}"])
    datamodule, data = builders.build_data(cfg)
    datamodule.place_on(torch.device("cpu"))
    tensor_batches = datamodule.train_dataloader()
    batch_size = int(cfg.train.batch_size)

    torch.manual_seed(int(cfg.seed))
    net = builders.build_net(cfg, data).train()
    _, strategy = build_optimizer(cfg.optimizer, net, num_train_samples=data.num_train, num_classes=data.num_classes)
    backend, batch = LocalBackend(net), next(iter(tensor_batches))

    def step_time() -> float:
        return timed(lambda: [strategy.training_step(backend, batch, epoch=0) for _ in range(steps)]) / steps

    contenders = {"tensor": lambda: epoch_time_per_image(tensor_batches), "step": step_time}
    for workers in WORKER_COUNTS:
        loader = torchvision_loader(datamodule.splits, batch_size, workers)
        contenders[f"torchvision {workers} workers"] = lambda loader=loader: epoch_time_per_image(loader)
    for measure in contenders.values():
        measure()  # warm-up: first epoch, worker start, first step
    times = interleaved(contenders, QUICK_REPETITIONS if args.quick else REPETITIONS)

    print(f"{samples} images of 3x32x32, batch {batch_size}, median of {len(times['step'])}:")
    for name, values in times.items():
        if name == "step":
            print(f"  small_cnn SGD step: {1e3 * statistics.median(values):.1f} ms")
        else:
            print(f"  {name}: {1 / statistics.median(values):,.0f} images/s")
    torchvision_times = zip(*(times[f"torchvision {workers} workers"] for workers in WORKER_COUNTS))
    best_torchvision = [min(per_setup) for per_setup in torchvision_times]
    batch_data_times = [batch_size * per_image for per_image in times["tensor"]]
    print_ratio("tensor loader data time/small_cnn step time", median_ratio(batch_data_times, times["step"]))
    print_ratio(
        "tensor loader/best torchvision DataLoader images per second", median_ratio(best_torchvision, times["tensor"])
    )


if __name__ == "__main__":
    main()
