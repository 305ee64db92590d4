"""MNIST downscaled to 10 x 10 (the paper's small-MLP setting, Section 7 [secondary]): a loader local to this paper.

MNIST is not among the product's datasets and not on this machine; its distribution files are IDX, the format the
product already reads for Fashion-MNIST (optrepro.data.idx), under the same four file names. This loader reads them
from ``dataset.path`` or ``<data_dir>/mnist`` and averages each 28 x 28 image over a 10 x 10 grid of cells
(adaptive average pooling; the paper's resampling was not read), keeping uint8 like every other image set.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from optrepro.data.fashion_mnist_data import idx_files
from optrepro.data.idx import IdxFormatError, read_idx
from optrepro.data.splits import ArraySplits, channel_stats
from optrepro.errors import DatasetUnavailableError

SIDE = 10


def downscale(images: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """uint8 N x 1 x H x W -> uint8 N x 1 x side x side by cell averages, rounded."""
    pooled = F.adaptive_avg_pool2d(images.float(), side)
    return pooled.round().clamp(0, 255).to(torch.uint8)


def load_mnist10(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    path = dataset_cfg.get("path")
    folders = ([Path(path).expanduser()] if path else []) + [Path(data_dir) / "mnist"]
    folder = next((f for f in folders if idx_files(f) is not None), None)
    if folder is None:
        raise DatasetUnavailableError(
            "MNIST IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            f"t10k-labels-idx1-ubyte, plain or .gz) not found in {', '.join(str(f) for f in folders)}; "
            "copy them there or set dataset.path"
        )
    arrays = {}
    for split, (images_file, labels_file) in idx_files(folder).items():
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or labels.max() > 9:
            raise IdxFormatError(f"{images_file} / {labels_file}: expected N x H x W images and N labels in 0..9")
        arrays[split] = (downscale(torch.from_numpy(images).unsqueeze(1)), torch.from_numpy(labels).long())
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    mean, std = channel_stats(x_train)
    return ArraySplits(x_train, y_train, x_test, y_test, 10, "mnist10", mean, std)
