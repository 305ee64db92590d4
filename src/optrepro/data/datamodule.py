"""LightningDataModule that keeps a whole dataset on the training device and serves tensor batches from it."""

from __future__ import annotations

import lightning as L
import torch

from optrepro.data.augment import AugmentConfig
from optrepro.data.batches import EvalBatches, InputTransform, TrainBatches
from optrepro.data.splits import ArraySplits


class TensorDataModule(L.LightningDataModule):
    """Splits moved once to `trainer.strategy.root_device` in `setup`; batches are made there by tensor ops.

    `batch_size` is per device. Train batches are a seeded, rank-sharded permutation per epoch (see
    TrainBatches); val/test iterate the test split in order, sharded by rank without padding (see EvalBatches).
    Without a trainer (bare loops, tests) it runs on the CPU as rank 0 of 1, or wherever `place_on` says.
    """

    def __init__(
        self,
        splits: ArraySplits,
        batch_size: int,
        augment=None,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.augment = AugmentConfig.from_cfg(augment)
        if self.augment.enabled and not splits.is_image:
            raise ValueError(
                f"{splits.name} holds vectors, but dataset.augment asks for image augmentation ({self.augment}); "
                "set dataset.augment to {} for vector data"
            )
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.seed, self.drop_last, self.channels_last = seed, drop_last, channels_last
        self.device: torch.device | None = None

    @property
    def num_train_samples(self) -> int:
        return self.splits.num_train

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        self.place_on(trainer.strategy.root_device if trainer is not None else torch.device("cpu"))

    def place_on(self, device: torch.device) -> None:
        """Move the tensors to `device` once (uint8 images stay uint8 there: 4x less memory than float)."""
        device = torch.device(device)
        if self.device == device:
            return
        s = self.splits
        self.x_train, self.y_train = s.x_train.to(device), s.y_train.to(device)
        self.x_test, self.y_test = s.x_test.to(device), s.y_test.to(device)
        self.to_input = InputTransform(s.mean, s.std, s.is_image, device, self.channels_last)
        self.device = device

    def train_dataloader(self) -> TrainBatches:
        self._require_placed()
        return TrainBatches(
            self.x_train,
            self.y_train,
            batch_size=self.batch_size,
            seed=self.seed,
            to_input=self.to_input,
            augment=self.augment,
            drop_last=self.drop_last,
            rank=self._rank(),
            world_size=self._world_size(),
            epoch_fn=self._current_epoch,
        )

    def val_dataloader(self) -> EvalBatches:
        self._require_placed()
        return EvalBatches(
            self.x_test,
            self.y_test,
            batch_size=self.eval_batch_size,
            to_input=self.to_input,
            rank=self._rank(),
            world_size=self._world_size(),
        )

    test_dataloader = val_dataloader

    def _require_placed(self) -> None:
        if self.device is None:
            raise RuntimeError("TensorDataModule has no device yet: call setup() (Lightning does) or place_on(device)")

    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _current_epoch(self) -> int:
        """The epoch being trained. `trainer.current_epoch` is stale when a run resumed from an epoch-end checkpoint
        creates its first iterator (it would replay the previous epoch's order); the count of processed epochs is
        right both then and at every normal epoch start."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_progress.current.processed
