"""Batch iterables over device-resident tensors: seeded, rank-sharded training epochs and in-order evaluation.

They replace torch DataLoaders for data that fits on the device: no workers, no host-to-device copies.
Every batch is `(x, y, idx)`: float inputs, int64 labels, int64 indices into the split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from optrepro.data.augment import (
    AugmentConfig,
    augment_batch,
    cutout,
    draw_augment_params,
)
from optrepro.data.seeds import seeded_generator

Batch = tuple[Tensor, Tensor, Tensor]
# Mixed into the run seed so data order is a different random stream from label noise.
EPOCH_STREAM = 0xE90C


class InputTransform:
    """Stored samples -> model inputs: images to normalized float (optionally channels_last), vectors standardized.

    Normalizing here, per batch, keeps the stored copy uint8: a quarter of the device memory of float32.
    """

    def __init__(self, mean, std, is_image: bool, device: torch.device, channels_last: bool = False) -> None:
        shape = (1, -1, 1, 1) if is_image else (1, -1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).reshape(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).reshape(shape)
        self.scale = 1 / 255 if is_image else 1.0
        self.channels_last = channels_last and is_image

    def __call__(self, raw: Tensor) -> Tensor:
        x = (raw.float() * self.scale - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def rank_slice(start: int, stop: int, rank: int, world_size: int) -> tuple[int, int]:
    """This rank's contiguous part of positions [start, stop): even split, first ranks take one more."""
    base, extra = divmod(stop - start, world_size)
    first = start + rank * base + min(rank, extra)
    return first, first + base + (1 if rank < extra else 0)


def batches_per_epoch(num_samples: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    """Training steps per epoch: a short last global batch counts unless it has fewer samples than ranks."""
    full, remainder = divmod(num_samples, batch_size * world_size)
    return full + (not drop_last and remainder >= world_size)


def per_device_batch_sizes(num_samples: int, batch_size: int, world_size: int, drop_last: bool) -> list[int]:
    """Every per-device batch size one epoch hands a rank, as TrainBatches cuts them: the full batch and, when the
    epoch's short last global batch is kept, each rank's share of it (shares differ by at most one sample)."""
    full, remainder = divmod(num_samples, batch_size * world_size)
    sizes = [batch_size] if full else []
    if batches_per_epoch(num_samples, batch_size, world_size, drop_last) > full:
        sizes += sorted(
            {stop - start for start, stop in (rank_slice(0, remainder, r, world_size) for r in range(world_size))}
        )
    return sizes


class TrainBatches:
    """One epoch of training batches for one rank; iterate again for the next epoch (`epoch_fn` says which).

    Epoch e uses a permutation from a CPU generator seeded by (seed, e), so the order is the same on every
    device. Global batch k is positions [k*G, (k+1)*G) of it with G = batch_size * world_size; rank r takes the
    r-th contiguous part. The union over ranks is exactly the single-device batch, and augmentation draws are
    per position, so results do not depend on how many devices share the work.
    Without drop_last the final short global batch is split evenly; if it has fewer samples than ranks it
    is dropped instead (no rank may get an empty batch), losing at most world_size - 1 samples per epoch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        seed: int,
        to_input: InputTransform,
        augment: AugmentConfig | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        epoch_fn: Callable[[], int] = lambda: 0,
    ) -> None:
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size; got {batch_size}, {rank}, {world_size}")
        self.x, self.y = x, y
        self.batch_size, self.seed, self.to_input = batch_size, seed, to_input
        self.augment = augment or AugmentConfig()
        self.drop_last, self.rank, self.world_size, self.epoch_fn = drop_last, rank, world_size, epoch_fn

    def __len__(self) -> int:
        return batches_per_epoch(len(self.y), self.batch_size, self.world_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch_batches(self.epoch_fn())

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        generator = seeded_generator(self.seed, EPOCH_STREAM, epoch)
        count = len(self.y)
        order = torch.randperm(count, generator=generator).to(self.x.device, non_blocking=True)
        params = None
        if self.augment.enabled:
            height, width = self.x.shape[-2:]
            params = draw_augment_params(self.augment, count, height, width, generator).to(self.x.device)
        global_batch = self.batch_size * self.world_size
        for step in range(len(self)):
            start = step * global_batch
            first, last = rank_slice(start, min(start + global_batch, count), self.rank, self.world_size)
            idx = order[first:last]
            raw = self.x[idx]
            if params is None:
                yield self.to_input(raw), self.y[idx], idx
                continue
            batch_params = params.select(slice(first, last))
            x = self.to_input(augment_batch(raw, batch_params, self.augment))
            yield cutout(x, batch_params.cutout_centers, self.augment.cutout), self.y[idx], idx


class EvalBatches:
    """The split in order, no augmentation; rank r evaluates the r-th contiguous shard, without padding.

    Shards differ in size by at most one sample and nothing is counted twice, so metrics must be reduced by
    summing (correct, total) over ranks, not by averaging per-rank means.
    """

    def __init__(
        self, x: Tensor, y: Tensor, *, batch_size: int, to_input: InputTransform, rank: int = 0, world_size: int = 1
    ) -> None:
        self.x, self.y, self.batch_size, self.to_input = x, y, batch_size, to_input
        self.first, self.last = rank_slice(0, len(y), rank, world_size)

    def __len__(self) -> int:
        return math.ceil((self.last - self.first) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for start in range(self.first, self.last, self.batch_size):
            idx = torch.arange(start, min(start + self.batch_size, self.last), device=self.x.device)
            yield self.to_input(self.x[idx]), self.y[idx], idx
