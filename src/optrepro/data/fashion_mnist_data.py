"""Fashion-MNIST from IDX files: the copy shipped in the repository (MIT-licensed, 30 MB, checked against its
SHA-256 on every load), Debian's dataset-fashion-mnist, a copy of the user's, with the hub as the last resort.
A `dataset.path` the user gives is the only place read: a path without the data is an error, never skipped."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import torch

from optrepro.data.hub_datasets import HubImageDataset, load_hub_images
from optrepro.data.idx import IdxFormatError, read_idx
from optrepro.data.splits import ArraySplits, channel_stats
from optrepro.errors import DatasetUnavailableError
from optrepro.paths import REPO_ROOT

SHIPPED_DIR = REPO_ROOT / "data" / "shipped" / "fashion_mnist"
# SHA-256 of each file's IDX bytes (after gunzip), as released by Zalando Research (the files Debian ships too).
SHIPPED_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST = HubImageDataset(
    "fashion_mnist",
    "zalando-datasets/fashion_mnist",
    "label",
    10,
    offline_source=(
        "Without internet: restore the copy the repository ships "
        "(`git checkout -- data/shipped/fashion_mnist`), or on Debian or Ubuntu "
        f"`sudo apt-get install dataset-fashion-mnist` (IDX files in {DEBIAN_DIR}). "
    ),
)
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_fashion_mnist(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    """dataset.path alone when given (IDX files, or a save_to_disk / parquet copy); else the first folder with all
    four IDX files among the shipped copy, Debian's and data_dir/fashion_mnist; else the hub."""
    path = dataset_cfg.get("path")
    if path:
        folder = Path(path).expanduser()
        if idx_files(folder) is not None:
            return read_idx_folder(folder)
        if folder.is_dir():
            return load_hub_images(FASHION_MNIST, path, data_dir)  # a save_to_disk or parquet copy
        raise DatasetUnavailableError(
            f"dataset.path={path}: no such folder; give a folder with the four Fashion-MNIST IDX files "
            f"({', '.join(SHIPPED_SHA256)}, plain or .gz) or a datasets save_to_disk / parquet copy, or leave "
            "dataset.path out to use the copy shipped in data/shipped/fashion_mnist"
        )
    if idx_files(SHIPPED_DIR) is not None:
        verify_shipped_copy(SHIPPED_DIR)
        return read_idx_folder(SHIPPED_DIR)
    folders = [SHIPPED_DIR, DEBIAN_DIR, Path(data_dir) / "fashion_mnist"]
    for folder in folders[1:]:
        if idx_files(folder) is not None:
            return read_idx_folder(folder)
    looked = tuple(f"{folder} (no IDX files)" for folder in folders)
    return load_hub_images(FASHION_MNIST, None, data_dir, looked=looked)


def verify_shipped_copy(folder: Path) -> None:
    """The shipped files are exactly Zalando's: a damaged or partial checkout fails here, not as odd accuracies."""
    for split_files in idx_files(folder).values():
        for file in split_files:
            raw = file.read_bytes()
            digest = hashlib.sha256(gzip.decompress(raw) if file.suffix == ".gz" else raw).hexdigest()
            expected = SHIPPED_SHA256[file.name.removesuffix(".gz")]
            if digest != expected:
                raise IdxFormatError(
                    f"{file}: SHA-256 {digest[:12]}… is not the released file's {expected[:12]}…; restore it with "
                    f"`git checkout -- {file.relative_to(REPO_ROOT).as_posix()}` (or delete data/shipped/fashion_mnist "
                    "to use Debian's dataset-fashion-mnist or the hub)"
                )


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
