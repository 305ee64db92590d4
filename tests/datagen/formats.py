"""Small seeded datasets in the on-disk formats of the real ones, so a full preset's own data path reads them.

- CIFAR-10/100 as the Hugging Face hub publishes them (`<config>/train-00000-of-00001.parquet`, an `img` struct
  column of PNG bytes and an int label column), or as a `datasets.DatasetDict.save_to_disk` folder;
- ImageNet as ILSVRC-2012 class folders, `<root>/{train,val}/<wnid>/*.JPEG`;
- Fashion-MNIST as the four gzipped IDX files of the original distribution.
Pixels are uniform noise from a fixed seed: the tests check that runs go through, not what they learn.
"""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

SEED = 0
CIFAR_HUB_LAYOUT = {"cifar10": ("plain_text", "label"), "cifar100": ("cifar100", "fine_label")}
IDX_UBYTE = 0x08


def random_images(count: int, height: int, width: int, channels: int, seed: int) -> np.ndarray:
    shape = (count, height, width, channels) if channels > 1 else (count, height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def cyclic_labels(count: int, num_classes: int) -> np.ndarray:
    """0, 1, ..., C-1, 0, 1, ...: every class present as soon as count >= C, the same on every call."""
    return np.arange(count, dtype=np.int64) % num_classes


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_cifar_parquet(folder: Path, name: str, num_train: int, num_test: int) -> Path:
    """The hub's parquet layout of `uoft-cs/<name>`: one shard per split under the dataset's config folder."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    config_name, label_column = CIFAR_HUB_LAYOUT[name]
    num_classes = 100 if name == "cifar100" else 10
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    (folder / config_name).mkdir(parents=True, exist_ok=True)
    for offset, (split, count) in enumerate((("train", num_train), ("test", num_test))):
        images = random_images(count, 32, 32, 3, SEED + offset)
        columns = {
            "img": pa.array([{"bytes": png_bytes(im), "path": None} for im in images], type=image_type),
            label_column: pa.array(cyclic_labels(count, num_classes)),
        }
        if name == "cifar100":
            columns["coarse_label"] = pa.array(cyclic_labels(count, 20))
        pq.write_table(pa.table(columns), folder / config_name / f"{split}-00000-of-00001.parquet")
    return folder


def write_cifar_saved(folder: Path, name: str, num_train: int, num_test: int) -> Path:
    """A `DatasetDict.save_to_disk` folder with the hub dataset's features (Image column, ClassLabel labels)."""
    import datasets

    _, label_column = CIFAR_HUB_LAYOUT[name]
    num_classes = 100 if name == "cifar100" else 10
    features = datasets.Features({"img": datasets.Image(), label_column: datasets.ClassLabel(num_classes=num_classes)})
    splits = {}
    for offset, (split, count) in enumerate((("train", num_train), ("test", num_test))):
        images = random_images(count, 32, 32, 3, SEED + offset)
        rows = {"img": [Image.fromarray(im) for im in images], label_column: cyclic_labels(count, num_classes).tolist()}
        splits[split] = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def write_imagenet_folders(root: Path, train_per_class: list[int], val_per_class: int) -> Path:
    """`root/train/<wnid>/<wnid>_<i>.JPEG` and `root/val/<wnid>/...`: one folder per class, JPEGs of mixed sizes."""
    rng = np.random.default_rng(SEED)
    for split, counts in (("train", train_per_class), ("val", [val_per_class] * len(train_per_class))):
        for class_index, count in enumerate(counts):
            wnid = f"n{class_index:08d}"
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                height, width = (int(v) for v in rng.integers(160, 320, size=2))
                image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / split / wnid / f"{wnid}_{i}.JPEG", format="JPEG", quality=90)
    return root


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: two zero bytes, type code, rank, big-endian sizes, then the data."""
    header = struct.pack(">BBBB", 0, 0, IDX_UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist_idx(folder: Path, num_train: int, num_test: int) -> Path:
    """The four gzipped IDX files of Fashion-MNIST's distribution (28 x 28 greyscale, labels 0-9)."""
    folder.mkdir(parents=True, exist_ok=True)
    for offset, (prefix, count) in enumerate((("train", num_train), ("t10k", num_test))):
        arrays = {
            "images-idx3-ubyte": random_images(count, 28, 28, 1, SEED + offset),
            "labels-idx1-ubyte": cyclic_labels(count, 10).astype(np.uint8),
        }
        for stem, array in arrays.items():
            (folder / f"{prefix}-{stem}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    return folder
