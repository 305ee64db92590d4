"""Behaviour of optrepro.data: loaders, label noise, augmentation ops, batch iteration and the datamodule."""

from __future__ import annotations

import gzip
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from optrepro.data import (
    DATASET_NAMES,
    ArraySplits,
    AugmentConfig,
    EvalBatches,
    TensorDataModule,
    TrainBatches,
    dataset_info,
    fashion_mnist_data,
    load_imagenet_folders,
    load_splits,
)
from optrepro.data.augment import cutout, horizontal_flip, random_crop
from optrepro.data.batches import InputTransform
from optrepro.data.fashion_mnist_data import DEBIAN_DIR
from optrepro.data.idx import IdxFormatError, read_idx
from optrepro.data.label_noise import noisy_labels
from optrepro.errors import DatasetUnavailableError, OptreproError, UnknownChoiceError
from optrepro.paths import CONFIG_DIR

IDX_TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def write_idx(path: Path, array: np.ndarray, gzipped: bool = False) -> Path:
    """Independent IDX writer (header: 0, 0, type code, ndim, big-endian uint32 dims; big-endian data)."""
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype.type], array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    raw = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    return path


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_round_trip(tmp_path, dtype, gzipped):
    array = (
        (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
        if dtype != np.uint8
        else np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    )
    read = read_idx(write_idx(tmp_path / "a.idx", array, gzipped))
    assert read.dtype == array.dtype and read.shape == array.shape
    np.testing.assert_array_equal(read, array)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda raw: raw[:-3], "truncated"),
        (lambda raw: raw + b"\x00", "needs 24 data bytes but the file has 25"),
        (lambda raw: b"\x01" + raw[1:], "bad magic"),
        (lambda raw: raw[:2] + b"\x42" + raw[3:], "unknown IDX type code 0x42"),
        (lambda raw: raw[:2], "too short"),
        (lambda raw: raw[:6], "declares 2 dimensions"),
        (lambda raw: gzip.compress(raw)[:-8], "corrupt gzip"),
    ],
)
def test_corrupt_idx_names_file_and_problem(tmp_path, corrupt, message):
    good = write_idx(tmp_path / "good.idx", np.zeros((4, 6), np.uint8)).read_bytes()
    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(corrupt(good))
    with pytest.raises(IdxFormatError, match=message) as err:
        read_idx(bad)
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------- dataset loading


def write_fashion_idx_folder(folder: Path, num_train: int, num_test: int) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train": (
            rng.integers(0, 256, (num_train, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, num_train, dtype=np.uint8),
        ),
        "t10k": (
            rng.integers(0, 256, (num_test, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, num_test, dtype=np.uint8),
        ),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in arrays.items():
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, gzipped=True)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels)
    return arrays


def test_fashion_mnist_from_idx_folder_at_dataset_path(tmp_path):
    arrays = write_fashion_idx_folder(tmp_path / "fm", num_train=12, num_test=5)
    splits = load_splits({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, tmp_path / "data")
    assert splits.x_train.shape == (12, 1, 28, 28) and splits.x_test.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(splits.x_train[:, 0].numpy(), arrays["train"][0])
    np.testing.assert_array_equal(splits.y_test.numpy(), arrays["t10k"][1])
    assert splits.y_train.dtype == torch.int64 and splits.x_train.dtype == torch.uint8


def test_fashion_mnist_idx_with_out_of_range_label_is_rejected(tmp_path):
    write_fashion_idx_folder(tmp_path / "fm", num_train=3, num_test=2)
    write_idx(tmp_path / "fm" / "t10k-labels-idx1-ubyte", np.array([1, 10], np.uint8))
    with pytest.raises(IdxFormatError, match="label 10 outside 0..9"):
        load_splits({"name": "fashion_mnist", "path": str(tmp_path / "fm")}, tmp_path / "data")


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason=f"Debian's dataset-fashion-mnist is not installed ({DEBIAN_DIR})")
def test_fashion_mnist_from_debian_package(tmp_path):
    splits = load_splits({"name": "fashion_mnist"}, tmp_path)
    assert splits.x_train.shape == (60000, 1, 28, 28) and splits.x_test.shape == (10000, 1, 28, 28)
    assert splits.num_classes == 10 and set(splits.y_train.unique().tolist()) == set(range(10))
    assert 0.25 < splits.mean[0] < 0.32 and 0.32 < splits.std[0] < 0.38  # published stats: 0.286, 0.353


def test_fashion_mnist_is_read_from_the_shipped_copy_without_debian_or_internet(tmp_path, monkeypatch):
    """The README's first command on a fresh offline machine with Python alone."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(fashion_mnist_data, "DEBIAN_DIR", tmp_path / "no-debian-package")
    splits = load_splits({"name": "fashion_mnist"}, tmp_path / "data")
    assert splits.x_train.shape == (60000, 1, 28, 28) and splits.x_test.shape == (10000, 1, 28, 28)
    assert splits.y_train[:5].tolist() == [9, 0, 0, 3, 0]  # Zalando's first training labels


def test_a_damaged_shipped_copy_is_refused_with_the_command_that_restores_it(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    shutil.copytree(fashion_mnist_data.SHIPPED_DIR, shipped)
    labels = shipped / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # one test label changed: still a valid IDX file
    labels.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setattr(fashion_mnist_data, "SHIPPED_DIR", shipped)
    monkeypatch.setattr(fashion_mnist_data, "REPO_ROOT", tmp_path)
    with pytest.raises(IdxFormatError, match="t10k-labels-idx1-ubyte.gz: SHA-256 .* is not the released file's") as err:
        load_splits({"name": "fashion_mnist"}, tmp_path / "data")
    assert "git checkout -- shipped/t10k-labels-idx1-ubyte.gz" in str(err.value)


def test_a_fashion_mnist_path_without_the_data_is_an_error_not_skipped(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=f"dataset.path={tmp_path / 'nonexistent'}: no such folder"):
        load_splits({"name": "fashion_mnist", "path": str(tmp_path / "nonexistent")}, tmp_path / "data")


def tiny_image_dataset_dict(label_column: str, num_classes: int, sizes=(("train", 6), ("test", 4))):
    """A DatasetDict shaped like uoft-cs/cifar*: PIL images in `img`, integer labels."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(1)
    arrays, parts = {}, {}
    for split, count in sizes:
        pixels = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, num_classes, count)
        arrays[split] = (pixels, labels)
        parts[split] = datasets.Dataset.from_dict(
            {"img": [Image.fromarray(p) for p in pixels], label_column: labels.tolist()},
            features=datasets.Features({"img": datasets.Image(), label_column: datasets.Value("int64")}),
        )
    return datasets.DatasetDict(parts), arrays


def assert_splits_match(splits: ArraySplits, arrays: dict) -> None:
    for split in ("train", "test"):
        pixels, labels = arrays[split]
        x, y = (splits.x_train, splits.y_train) if split == "train" else (splits.x_test, splits.y_test)
        np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), pixels)
        np.testing.assert_array_equal(y.numpy(), labels)


def test_cifar10_from_save_to_disk_folder_then_from_tensor_cache(tmp_path):
    dataset_dict, arrays = tiny_image_dataset_dict("label", 10)
    dataset_dict.save_to_disk(str(tmp_path / "copy"))
    cfg = {"name": "cifar10", "path": str(tmp_path / "copy")}
    splits = load_splits(cfg, tmp_path / "data")
    assert_splits_match(splits, arrays)
    assert splits.num_classes == 10 and splits.name == "cifar10" and len(splits.mean) == 3
    assert len(list((tmp_path / "data" / "tensors").glob("cifar10-*.pt"))) == 1
    for file in (tmp_path / "copy").rglob("*.arrow"):
        file.unlink()  # a second load must not touch the source
    assert_splits_match(load_splits(cfg, tmp_path / "data"), arrays)


def write_hub_parquet(dataset_dict, folder: Path, config_name: str) -> None:
    (folder / config_name).mkdir(parents=True)
    for split, part in dataset_dict.items():
        part.to_parquet(str(folder / config_name / f"{split}-00000-of-00001.parquet"))


def test_cifar100_from_hub_style_parquet_folder_uses_fine_labels(tmp_path):
    dataset_dict, arrays = tiny_image_dataset_dict("fine_label", 100)
    write_hub_parquet(dataset_dict, tmp_path / "copy", "cifar100")
    splits = load_splits({"name": "cifar100", "path": str(tmp_path / "copy")}, tmp_path / "data")
    assert_splits_match(splits, arrays)
    assert splits.num_classes == 100


def test_cifar10_from_populated_hub_cache_while_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dataset_dict, arrays = tiny_image_dataset_dict("label", 10)
    repo = tmp_path / "data" / "hf" / "datasets--uoft-cs--cifar10"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    write_hub_parquet(dataset_dict, repo / "snapshots" / commit, "plain_text")
    assert_splits_match(load_splits({"name": "cifar10"}, tmp_path / "data"), arrays)


@pytest.mark.parametrize("name, hub_id", [("cifar10", "uoft-cs/cifar10"), ("cifar100", "uoft-cs/cifar100")])
def test_offline_cifar_fails_fast_naming_places_and_remedies(tmp_path, monkeypatch, name, hub_id):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(DatasetUnavailableError) as err:
        load_splits({"name": name, "path": None}, tmp_path / "data")
    assert time.monotonic() - started < 10
    message = str(err.value)
    for needle in (name, hub_id, str(tmp_path / "data" / "hf"), "dataset.path", "save_to_disk", "parquet", "internet"):
        assert needle in message


def test_offline_fashion_mnist_names_the_debian_package_first(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(fashion_mnist_data, "DEBIAN_DIR", tmp_path / "no-debian-package")
    monkeypatch.setattr(fashion_mnist_data, "SHIPPED_DIR", tmp_path / "no-shipped-copy")
    with pytest.raises(DatasetUnavailableError) as err:
        load_splits({"name": "fashion_mnist", "path": None}, tmp_path / "data")
    message = str(err.value)
    assert message.index("sudo apt-get install dataset-fashion-mnist") < message.index("To get it:")
    assert str(tmp_path / "no-debian-package") in message  # the folder looked in


def test_missing_dataset_path_is_named_in_the_error(tmp_path):
    with pytest.raises(DatasetUnavailableError, match=f"dataset.path={tmp_path / 'nowhere'}"):
        load_splits({"name": "cifar10", "path": str(tmp_path / "nowhere")}, tmp_path / "data")


def test_unknown_dataset_name_lists_valid_ones():
    with pytest.raises(UnknownChoiceError) as err:
        load_splits({"name": "cifar11"}, "unused")
    assert all(name in str(err.value) for name in DATASET_NAMES)


def test_imagenet_is_served_from_folders_not_splits(tmp_path):
    with pytest.raises(OptreproError, match="ImageFolderDataModule"):
        load_splits({"name": "imagenet"}, tmp_path)
    with pytest.raises(DatasetUnavailableError, match="dataset.path"):
        load_imagenet_folders(None)
    with pytest.raises(DatasetUnavailableError, match=str(tmp_path / "val")):
        (tmp_path / "train").mkdir()
        load_imagenet_folders(tmp_path)


def test_digits_split_is_fixed_and_stratified(tmp_path):
    first, second = load_splits({"name": "digits"}, tmp_path), load_splits({"name": "digits"}, tmp_path)
    assert first.x_train.shape == (1347, 1, 8, 8) and first.x_test.shape == (450, 1, 8, 8)
    assert first.x_train.dtype == torch.uint8 and first.x_train.max() == 255
    assert torch.equal(first.x_test, second.x_test) and dataset_info(first) == (10, (1, 8, 8))
    per_class_all = torch.bincount(torch.cat([first.y_train, first.y_test])).double()
    assert (torch.bincount(first.y_test) - per_class_all * 450 / 1797).abs().max() <= 1  # stratified


def test_mnist1d_shapes_classes_and_global_rng_untouched(tmp_path):
    numpy_state, python_state = np.random.get_state()[1].copy(), random.getstate()
    splits = load_splits({"name": "mnist1d"}, tmp_path)
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.getstate() == python_state
    assert splits.x_train.shape == (4000, 40) and splits.x_test.shape == (1000, 40)
    assert splits.x_train.dtype == torch.float32 and dataset_info(splits) == (10, (40,))
    assert torch.equal(load_splits({"name": "mnist1d"}, tmp_path).x_test, splits.x_test)  # from the cache


@pytest.mark.parametrize("shape, dtype", [((3, 8, 8), torch.uint8), ((12,), torch.float32)])
def test_synthetic_data_is_seeded_and_shaped(shape, dtype):
    cfg = {"name": "synthetic", "shape": list(shape), "num_classes": 3, "num_samples": 50, "num_test": 20}
    splits = load_splits(cfg, "unused")
    assert (
        splits.x_train.shape == (50, *shape) and splits.x_test.shape == (20, *shape) and splits.x_train.dtype == dtype
    )
    assert torch.equal(load_splits(cfg, "unused").x_train, splits.x_train)
    assert not torch.equal(load_splits({**cfg, "data_seed": 1}, "unused").x_train, splits.x_train)


# ---------------------------------------------------------------- label noise


def test_label_noise_changes_expected_fraction():
    count, classes, fraction = 20000, 10, 0.4
    labels = torch.arange(count) % classes
    changed = (noisy_labels(labels, classes, fraction, seed=3) != labels).double().mean().item()
    expected = fraction * (classes - 1) / classes  # replaced by a uniform class, which may be the same one
    assert abs(changed - expected) < 5 * (expected * (1 - expected) / count) ** 0.5


def test_label_noise_is_deterministic_per_seed_and_keeps_test_labels():
    cfg = {"name": "synthetic", "num_samples": 2000, "num_classes": 5, "label_noise": 0.5}
    clean = load_splits({**cfg, "label_noise": 0.0}, "unused")
    noisy = load_splits(cfg, "unused", seed=7)
    assert torch.equal(noisy.y_train, load_splits(cfg, "unused", seed=7).y_train)
    assert not torch.equal(noisy.y_train, load_splits(cfg, "unused", seed=8).y_train)
    assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.y_train_clean, clean.y_train)
    assert 0.3 < noisy.noisy_label_fraction < 0.5 and clean.noisy_label_fraction == 0.0


def test_label_noise_needs_the_run_seed():
    with pytest.raises(ValueError, match="seed"):
        load_splits({"name": "synthetic", "label_noise": 0.2}, "unused")


# ---------------------------------------------------------------- validation split


def test_the_validation_split_is_held_out_of_training_per_seed_and_the_test_set_is_gone():
    cfg = {"name": "digits", "val_fraction": 0.1}
    full = load_splits({"name": "digits"}, "unused")
    split = load_splits(cfg, "unused", seed=3)
    assert split.eval_split == "val" and full.eval_split == "test"
    assert (len(split.y_train), len(split.y_test)) == (1212, 135)  # round(0.1 * 1347) held out
    together = torch.cat([split.x_train, split.x_test]).flatten(1)
    assert sorted(map(tuple, together.tolist())) == sorted(map(tuple, full.x_train.flatten(1).tolist()))
    assert torch.equal(load_splits(cfg, "unused", seed=3).x_test, split.x_test)
    assert not torch.equal(load_splits(cfg, "unused", seed=4).x_test, split.x_test)


def test_label_noise_reaches_the_training_part_only_so_validation_labels_stay_clean():
    cfg = {"name": "synthetic", "num_samples": 2000, "num_classes": 5, "val_fraction": 0.2}
    clean = load_splits(cfg, "unused", seed=7)
    noisy = load_splits({**cfg, "label_noise": 0.5}, "unused", seed=7)
    assert torch.equal(noisy.y_test, clean.y_test) and torch.equal(noisy.x_test, clean.x_test)
    assert torch.equal(noisy.y_train_clean, clean.y_train) and noisy.noisy_label_fraction > 0.3


@pytest.mark.parametrize("fraction", [0.0001, 0.9999])
def test_a_validation_fraction_that_empties_a_part_is_refused(fraction):
    with pytest.raises(ValueError, match=r"holds out \d+ of 1347 training samples; choose a fraction"):
        load_splits({"name": "digits", "val_fraction": fraction}, "unused", seed=0)


# ---------------------------------------------------------------- augmentation ops


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect"])
@pytest.mark.parametrize("offset", [(4, 4), (0, 0), (8, 8), (0, 8), (3, 6)])
def test_random_crop_equals_slice_of_padded_image(pad_mode, offset):
    images = torch.arange(2 * 3 * 9 * 10, dtype=torch.float32).reshape(2, 3, 9, 10)
    offsets = torch.tensor([offset, offset])
    padded = F.pad(images, (4, 4, 4, 4), mode="constant" if pad_mode == "zeros" else "reflect")
    expected = padded[:, :, offset[0] : offset[0] + 9, offset[1] : offset[1] + 10]
    assert torch.equal(random_crop(images, offsets, 4, pad_mode), expected)


def test_random_crop_shifts_uint8_image_and_fills_zeros():
    image = torch.full((1, 1, 5, 5), 7, dtype=torch.uint8)
    out = random_crop(image, torch.tensor([[0, 4]]), 2)  # shift down by 2, left by 2
    assert out.dtype == torch.uint8
    assert (out[0, 0, :2] == 0).all() and (out[0, 0, :, 3:] == 0).all() and (out[0, 0, 2:, :3] == 7).all()


def test_horizontal_flip_is_exact_per_sample():
    images = torch.arange(2 * 2 * 3 * 4).reshape(2, 2, 3, 4)
    out = horizontal_flip(images, torch.tensor([True, False]))
    assert torch.equal(out[0], images[0].flip(-1)) and torch.equal(out[1], images[1])


@pytest.mark.parametrize(
    "center, size, rows, cols",
    [
        ((4, 4), 4, (2, 6), (2, 6)),
        ((0, 0), 4, (0, 2), (0, 2)),
        ((7, 7), 3, (6, 8), (6, 8)),
        ((3, 0), 5, (1, 6), (0, 3)),
    ],
)
def test_cutout_zeroes_exactly_the_clipped_square(center, size, rows, cols):
    out = cutout(torch.ones(1, 2, 8, 8), torch.tensor([center]), size)
    expected = torch.ones(1, 2, 8, 8)
    expected[:, :, rows[0] : rows[1], cols[0] : cols[1]] = 0
    assert torch.equal(out, expected)


def test_augment_config_rejects_unknown_keys_and_modes():
    with pytest.raises(UnknownChoiceError, match="crop_padding"):
        AugmentConfig.from_cfg({"crop_pad": 4})
    with pytest.raises(UnknownChoiceError, match="reflect"):
        AugmentConfig.from_cfg({"pad_mode": "edge"})


# ---------------------------------------------------------------- batch iteration


def image_batches(count=53, batch_size=5, world_size=1, rank=0, drop_last=False, seed=0, augment=None):
    x = torch.randint(0, 256, (count, 3, 6, 6), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    to_input = InputTransform((0.5,) * 3, (0.25,) * 3, True, torch.device("cpu"))
    augment = AugmentConfig(**({"crop_padding": 2, "flip": True, "cutout": 3} if augment is None else augment))
    return TrainBatches(
        x,
        torch.arange(count) % 4,
        batch_size=batch_size,
        seed=seed,
        to_input=to_input,
        augment=augment,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )


@pytest.mark.parametrize(
    "count, batch_size, world_size, drop_last, expected_len, covered",
    [
        (53, 5, 1, False, 11, 53),
        (53, 5, 1, True, 10, 50),
        (53, 5, 2, False, 6, 53),  # last global batch of 3 split 2 + 1
        (53, 5, 2, True, 5, 50),
        (46, 5, 4, False, 3, 46),  # last global batch of 6 split 2 + 2 + 1 + 1
        (42, 5, 4, False, 2, 40),  # last global batch of 2 < 4 ranks would leave a rank empty: dropped
    ],
)
def test_train_batches_cover_each_index_once_and_ranks_partition(
    count, batch_size, world_size, drop_last, expected_len, covered
):
    seen = []
    for rank in range(world_size):
        batches = image_batches(count, batch_size, world_size, rank, drop_last)
        rank_batches = list(batches.epoch_batches(0))
        assert len(batches) == len(rank_batches) == expected_len
        assert all(len(idx) > 0 for _, _, idx in rank_batches)
        seen += torch.cat([idx for _, _, idx in rank_batches]).tolist()
    assert len(seen) == len(set(seen)) == covered


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_together_reproduce_the_single_device_batch(world_size):
    single = list(image_batches(60, 5 * world_size).epoch_batches(2))
    per_rank = [list(image_batches(60, 5, world_size, rank).epoch_batches(2)) for rank in range(world_size)]
    for step, (x, y, idx) in enumerate(single):
        assert torch.equal(torch.cat([per_rank[r][step][2] for r in range(world_size)]), idx)
        assert torch.allclose(torch.cat([per_rank[r][step][0] for r in range(world_size)]), x)
        assert torch.equal(torch.cat([per_rank[r][step][1] for r in range(world_size)]), y)


def test_same_seed_same_batches_other_epoch_or_seed_other_order():
    def epoch(seed, number):
        return list(image_batches(seed=seed).epoch_batches(number))

    first, again = epoch(0, 0), epoch(0, 0)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][2], epoch(0, 1)[0][2])
    assert not torch.equal(first[0][2], epoch(1, 0)[0][2])


def test_train_batch_inputs_are_normalized_float_and_labels_follow_indices():
    batches = image_batches(augment={})
    x, y, idx = next(batches.epoch_batches(0))
    expected = (batches.x[idx].float() / 255 - 0.5) / 0.25
    assert x.dtype == torch.float32 and torch.allclose(x, expected, atol=1e-6) and torch.equal(y, idx % 4)


def test_eval_batches_in_order_sharded_without_padding():
    x = torch.arange(11, dtype=torch.float32)[:, None]
    to_input = InputTransform((0.0,), (1.0,), False, torch.device("cpu"))
    shards = [
        [
            idx.tolist()
            for _, _, idx in EvalBatches(x, torch.zeros(11), batch_size=2, to_input=to_input, rank=rank, world_size=3)
        ]
        for rank in range(3)
    ]
    assert shards == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10]]]


# ---------------------------------------------------------------- datamodule


def synthetic_splits(shape=(3, 8, 8)) -> ArraySplits:
    return load_splits({"name": "synthetic", "shape": list(shape), "num_samples": 40, "num_test": 10}, "unused")


def test_datamodule_rejects_image_augmentation_for_vectors():
    with pytest.raises(ValueError, match="dataset.augment"):
        TensorDataModule(synthetic_splits((12,)), batch_size=8, augment={"flip": True})


def test_datamodule_serves_channels_last_batches_after_setup():
    module = TensorDataModule(synthetic_splits(), batch_size=8, augment={"crop_padding": 2}, channels_last=True)
    with pytest.raises(RuntimeError, match="setup"):
        module.train_dataloader()
    module.setup("fit")
    x, y, idx = next(iter(module.train_dataloader()))
    assert x.shape == (8, 3, 8, 8) and x.is_contiguous(memory_format=torch.channels_last)
    assert len(module.train_dataloader()) == 5 and len(module.val_dataloader()) == 2


def test_lightning_epochs_use_the_seeded_order_for_the_trainer_epoch(tmp_path):
    import lightning as L

    class RecordIndices(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(12, 4)
            self.seen = {}

        def training_step(self, batch, batch_idx):
            x, y, idx = batch
            self.seen.setdefault(self.current_epoch, []).append(idx.clone())
            return F.cross_entropy(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = TensorDataModule(synthetic_splits((12,)), batch_size=16, seed=5)
    model = RecordIndices()
    L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    ).fit(model, data)
    reference = data.train_dataloader()
    for epoch in (0, 1):
        expected = [idx for _, _, idx in reference.epoch_batches(epoch)]
        assert len(model.seen[epoch]) == len(expected) == 3
        assert all(torch.equal(a, b) for a, b in zip(model.seen[epoch], expected, strict=True))


# ---------------------------------------------------------------- configs


@pytest.mark.parametrize("config_file", sorted((CONFIG_DIR / "dataset").glob("*.yaml")), ids=lambda p: p.stem)
def test_dataset_configs_follow_the_contract(config_file):
    cfg = yaml.safe_load(config_file.read_text())
    assert cfg["name"] == config_file.stem and cfg["name"] in DATASET_NAMES
    assert cfg["path"] is None and cfg["label_noise"] == 0.0 and "batch_size" not in cfg
    AugmentConfig.from_cfg(cfg["augment"])


def test_every_dataset_name_has_a_config():
    assert {p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")} == set(DATASET_NAMES)


def test_train_subset_is_fixed_across_run_seeds_and_leaves_the_test_split(tmp_path):
    from omegaconf import OmegaConf

    from optrepro.data import load_splits

    cfg = OmegaConf.create({"name": "digits", "path": None, "label_noise": 0.0, "train_subset": 100})
    full = load_splits(OmegaConf.create({"name": "digits", "path": None, "label_noise": 0.0}), tmp_path, seed=0)
    a, b = load_splits(cfg, tmp_path, seed=0), load_splits(cfg, tmp_path, seed=5)
    assert a.num_train == 100 and torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert torch.equal(a.x_test, full.x_test)
    rows = {tuple(r.tolist()) for r in full.x_train.flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in a.x_train.flatten(1)), "a subset, not new samples"
    with pytest.raises(ValueError, match="train_subset=5000 must be in 1..1347"):
        load_splits(OmegaConf.create({"name": "digits", "path": None, "train_subset": 5000}), tmp_path, seed=0)


def test_imagenet_from_the_hub_offline_says_how_to_get_it(tmp_path, monkeypatch):
    from optrepro.data.imagenet_data import load_imagenet_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetUnavailableError) as err:
        load_imagenet_hub(tmp_path / "hf")
    message = str(err.value)
    assert "ILSVRC/imagenet-1k" in message and str(tmp_path / "hf") in message and "dataset.path" in message
