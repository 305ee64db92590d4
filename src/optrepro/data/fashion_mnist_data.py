"""Fashion-MNIST from IDX files (Debian's dataset-fashion-mnist, or a copy) with the hub as the last resort."""

from __future__ import annotations

from pathlib import Path

import torch

from optrepro.data.hub_datasets import HubImageDataset, load_hub_images
from optrepro.data.idx import IdxFormatError, read_idx
from optrepro.data.splits import ArraySplits, channel_stats

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST = HubImageDataset(
    "fashion_mnist", "zalando-datasets/fashion_mnist", "label", 10,
    offline_source=f"Without internet, on Debian or Ubuntu: `sudo apt-get install dataset-fashion-mnist` (IDX files in {DEBIAN_DIR}). ",
)
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_fashion_mnist(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """First folder with all four IDX files among dataset.path, Debian's, data_dir/fashion_mnist; else the hub."""
    path = dataset_cfg.get("path")
    folders = ([Path(path).expanduser()] if path else []) + [DEBIAN_DIR, Path(data_dir) / "fashion_mnist"]
    for folder in folders:
        if idx_files(folder) is not None:
            return read_idx_folder(folder)
    if path and Path(path).expanduser().is_dir():
        return load_hub_images(FASHION_MNIST, path, data_dir)  # a save_to_disk or parquet copy
    looked = tuple(f"{folder} (no IDX files)" for folder in folders)
    return load_hub_images(FASHION_MNIST, None, data_dir, looked=looked)


def idx_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    """The (images, labels) file pair per split, plain or gzipped, or None unless all four exist."""
    found = {}
    for split, stems in IDX_STEMS.items():
        pair = tuple(next((f for f in (folder / s, folder / f"{s}.gz") if f.is_file()), None) for s in stems)
        if None in pair:
            return None
        found[split] = pair
    return found


def read_idx_folder(folder: Path) -> ArraySplits:
    arrays = {}
    for split, (images_file, labels_file) in idx_files(folder).items():
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise IdxFormatError(
                f"{images_file} / {labels_file}: expected N x H x W images and N labels, "
                f"got shapes {images.shape} and {labels.shape}"
            )
        if labels.max() >= FASHION_MNIST.num_classes:
            raise IdxFormatError(f"{labels_file}: label {labels.max()} outside 0..{FASHION_MNIST.num_classes - 1}")
        arrays[split] = (torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long())
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    mean, std = channel_stats(x_train)
    return ArraySplits(x_train, y_train, x_test, y_test, FASHION_MNIST.num_classes, "fashion_mnist", mean, std)
