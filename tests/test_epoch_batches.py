"""An epoch's short last batch: every batch size a run will see is known before training and must split as asked.

CIFAR-10's 50,000 images at batch 256 leave 80 in the last batch, which m-sharpness 32 cannot split; before the
check the main command stopped at the end of its first epoch.
"""

from __future__ import annotations

import pytest
import torch

from optrepro.config import check_epoch_batches
from optrepro.data.batches import InputTransform, TrainBatches, per_device_batch_sizes
from optrepro.errors import ConfigError
from optrepro.train import run


@pytest.mark.parametrize(
    "num_samples, batch_size, world_size, drop_last, expected",
    [
        (50_000, 256, 1, False, [256, 80]),  # CIFAR-10 at the SAM preset's batch
        (50_000, 256, 1, True, [256]),
        (50_000, 128, 2, False, [128, 40]),  # the 80 left over split over 2 ranks
        (85, 40, 2, False, [40, 2, 3]),  # 5 left over: ranks get 3 and 2
        (81, 40, 2, False, [40]),  # 1 left over, fewer than ranks: dropped
        (30, 64, 1, False, [30]),  # no full batch at all
        (512, 256, 1, False, [256]),  # no remainder
    ],
)
def test_per_device_batch_sizes_are_the_sizes_train_batches_yields(
    num_samples, batch_size, world_size, drop_last, expected
):
    assert per_device_batch_sizes(num_samples, batch_size, world_size, drop_last) == expected
    x, y = torch.zeros(num_samples, 1), torch.zeros(num_samples, dtype=torch.long)
    yielded = set()
    for rank in range(world_size):
        batches = TrainBatches(
            x,
            y,
            batch_size=batch_size,
            seed=0,
            to_input=InputTransform(0.0, 1.0, False, torch.device("cpu"), False),
            drop_last=drop_last,
            rank=rank,
            world_size=world_size,
        )
        yielded |= {len(targets) for _, targets, _ in batches}
    assert yielded == set(expected)


SAM_256 = ["optimizer=sam", "train.batch_size=256"]


@pytest.mark.parametrize(
    "overrides, num_train, message",
    [
        (
            SAM_256 + ["optimizer.m_sharpness=32"],
            50_000,
            "optimizer.m_sharpness=32 must divide every per-device micro-batch, but the per-device batch 80 of the "
            "epoch's short last batch (50000 training samples leave 80 after full batches of 256) gives micro-batches "
            "of 80 (train.accumulate=1); set train.drop_last=true to drop it (as google-research/sam does)",
        ),
        (
            SAM_256 + ["optimizer.m_sharpness=48"],
            50_176,  # 196 full batches, no remainder: the full batch fails
            "the per-device batch 256 gives micro-batches of 256 (train.accumulate=1); choose an m dividing 256",
        ),
        (
            SAM_256 + ["optimizer.m_sharpness=32", "train.accumulate=4"],
            50_000,
            "the per-device batch 80 of the epoch's short last batch (50000 training samples leave 80 "
            "after full batches of 256) gives micro-batches of 20 (train.accumulate=4)",
        ),
        (
            SAM_256 + ["optimizer.m_sharpness=32", "hardware=ddp_cpu"],
            50_000,
            "the per-device batch 40 of the epoch's short last batch (50000 training samples leave 80 after full "
            "batches of 256) gives micro-batches of 40",
        ),
        (
            ["train.batch_size=256", "train.accumulate=8"],
            49_925,  # 5 left over cannot make 8 micro-batches
            "train.accumulate=8: a per-device batch of 5 of the epoch's short last batch",
        ),
    ],
)
def test_a_batch_that_cannot_split_stops_with_the_fix(make_cfg, overrides, num_train, message):
    with pytest.raises(ConfigError) as raised:
        check_epoch_batches(make_cfg(overrides), num_train)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "overrides, num_train",
    [
        (SAM_256 + ["optimizer.m_sharpness=32", "train.drop_last=true"], 50_000),
        (SAM_256 + ["optimizer.m_sharpness=8"], 50_000),  # 8 divides the 80 left over
        (SAM_256 + ["optimizer.m_sharpness=8", "hardware=ddp_cpu"], 50_000),  # and each rank's 40
        (SAM_256 + ["optimizer.m_sharpness=32"], 50_176),
        (["train.batch_size=256"], 50_000),  # no m-sharpness: any remainder splits
        (SAM_256 + ["optimizer.m_sharpness=32", "limits.train_batches=5"], 50_000),  # never reaches the last batch
    ],
)
def test_batches_that_split_pass(make_cfg, overrides, num_train):
    check_epoch_batches(make_cfg(overrides), num_train)


DIGITS_SAM_M8 = [
    "dataset=digits",
    "model=small_cnn",
    "model.width=8",
    "logger=csv",
    "train.checkpoint=false",
    "optimizer=sam",
    "optimizer.m_sharpness=8",
    "train.batch_size=128",
    "train.epochs=2",
]


def test_the_short_last_batch_is_dropped_and_the_run_crosses_the_epoch_boundary(make_cfg, tmp_path):
    """Digits' 1,347 training images at batch 128 leave 67, which m = 8 cannot split."""
    with pytest.raises(ConfigError, match="short last batch"):
        run(make_cfg(DIGITS_SAM_M8))
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("record.json"))
    record = run(make_cfg([*DIGITS_SAM_M8, "train.drop_last=true"]))
    assert record["status"] == "finished"
    assert record["timing"]["steps"] == 2 * (1347 // 128)
    assert [row["step"] for row in record["history"]] == [10, 20]
