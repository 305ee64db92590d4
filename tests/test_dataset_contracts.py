"""The contract of every dataset config, shared and papers', in one table: an in-memory loader gives consistent
splits of the documented dtypes, the same tensors for the same seed; a loader whose files are missing stops with
an error that says where it looked and how to get them. A new dataset config without a row fails."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from helpers.compose import compose_config

from optrepro.data import load_splits
from optrepro.errors import OptreproError
from optrepro.paths import CONFIG_DIR, reproduction_config_dirs


class Row(NamedTuple):
    targets: str = "classes"  # classes (int64 in [0, num_classes)) or values (float32 regression targets)
    missing: str | None = None  # the loader reads files: a fragment of its error when they are absent


CONTRACTS = {
    "cifar10": Row(missing="cifar10 is not available. Looked in: dataset.path (not set)"),
    "cifar100": Row(missing="cifar100 is not available. Looked in: dataset.path (not set)"),
    "imagenet": Row(missing="imagenet does not fit in memory and has no ArraySplits"),  # served from folders
    "mnist10": Row(missing="MNIST IDX files (train-images-idx3-ubyte"),
    "ltsf_csv": Row(targets="values", missing="ETTh1.csv does not exist; put ETTh1.csv there or set dataset.path"),
    "digits": Row(),
    "fashion_mnist": Row(),
    "mnist1d": Row(),
    "modular_addition": Row(),
    "synthetic": Row(),
    "two_moons": Row(),
    "markov_lm": Row(),
    "colored_digits": Row(),
    "addition": Row(targets="values"),
    "temporal_order": Row(),
    "samformer_toy": Row(targets="values"),
    "fast_slow_patches": Row(),
}
IN_MEMORY = sorted(name for name, row in CONTRACTS.items() if row.missing is None)


def dataset_configs() -> set[str]:
    folders = [CONFIG_DIR / "dataset", *(d / "dataset" for d in reproduction_config_dirs())]
    return {path.stem for folder in folders for path in folder.glob("*.yaml")}


def test_every_dataset_config_has_a_row():
    assert dataset_configs() == set(CONTRACTS)


def splits(name: str, seed: int, data_dir: Path):
    cfg = compose_config([f"dataset={name}", f"paths.data_dir={data_dir}"])
    return load_splits(cfg.dataset, Path(cfg.paths.data_dir), seed=seed)


@pytest.mark.parametrize("name", IN_MEMORY)
def test_splits_have_the_documented_shapes_and_dtypes_and_repeat_per_seed(name, tmp_path):
    data = splits(name, 3, tmp_path)
    assert len(data.x_train) == len(data.y_train) > 0 and len(data.x_test) == len(data.y_test) > 0
    assert data.x_train.shape[1:] == data.x_test.shape[1:]
    assert data.x_train.dtype in (torch.uint8, torch.float32)  # uint8 is normalized per batch on the device
    per = data.x_train.shape[1] if data.x_train.dim() == 4 else data.x_train.shape[-1]  # images: per channel
    assert len(data.mean) == len(data.std) in (1, per), "InputTransform broadcasts one value, or one per channel"
    if CONTRACTS[name].targets == "classes":
        labels = torch.cat([data.y_train, data.y_test])
        assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < data.num_classes
    else:
        assert data.y_train.dtype == torch.float32
    again = splits(name, 3, tmp_path)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(data, field), getattr(again, field)), f"{name}: {field} differs for one seed"


@pytest.mark.parametrize("name", sorted(set(CONTRACTS) - set(IN_MEMORY)))
def test_a_loader_without_its_files_says_where_it_looked_and_what_to_do(name, tmp_path):
    with pytest.raises(OptreproError) as caught:
        splits(name, 0, tmp_path / "data")
    assert CONTRACTS[name].missing in str(caught.value)
