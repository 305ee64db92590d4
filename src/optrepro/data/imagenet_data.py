"""ImageNet: too large for device memory, so a classic worker DataLoader.

From `dataset.path`, the usual ILSVRC-2012 layout `<path>/train/<wnid>/*.JPEG` and `<path>/val/<wnid>/*.JPEG`
(the validation images sorted into class folders); without a path, from the HF hub (`ILSVRC/imagenet-1k`, gated:
accept its terms and `huggingface-cli login` first), cached under `<data_dir>/hf`. Batches are `(x, y, idx)`
like the tensor loaders.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from optrepro.data.hf_images import hub_offline_reason
from optrepro.errors import DatasetUnavailableError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


HUB_ID = "ILSVRC/imagenet-1k"


def imagenet_transforms(image_size: int = 224, resize_size: int = 256):
    """(train, val) transforms: RandomResizedCrop + flip for train, Resize + CenterCrop for val."""
    from torchvision import transforms

    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose(
        [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize]
    )
    val_tf = transforms.Compose(
        [transforms.Resize(resize_size), transforms.CenterCrop(image_size), transforms.ToTensor(), normalize]
    )
    return train_tf, val_tf


def load_imagenet_folders(path: str | Path | None, image_size: int = 224, resize_size: int = 256):
    """(train, val) torchvision ImageFolders with the standard transforms."""
    from torchvision import datasets

    root = Path(path).expanduser() if path else None
    missing = [
        str(root / split) if root else "dataset.path (not set)"
        for split in ("train", "val")
        if root is None or not (root / split).is_dir()
    ]
    if missing:
        raise DatasetUnavailableError(
            f"imagenet is not available. Looked for: {', '.join(missing)}. To get it: download ILSVRC-2012 "
            "(image-net.org, or the gated Hugging Face ILSVRC/imagenet-1k after accepting its terms), extract "
            "train/ and val/ with one folder per class, and set dataset.path=<folder holding train/ and val/>."
        )
    train_tf, val_tf = imagenet_transforms(image_size, resize_size)
    return datasets.ImageFolder(root / "train", train_tf), datasets.ImageFolder(root / "val", val_tf)


class HubImages(Dataset):
    """An HF image dataset split as (tensor, label) pairs through a torchvision transform."""

    def __init__(self, split, transform) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int):
        row = self.split[index]
        return self.transform(row["image"].convert("RGB")), row["label"]


def load_imagenet_hub(cache_dir: Path, image_size: int = 224, resize_size: int = 256):
    """(train, val) from the HF hub, cached under `cache_dir`; offline it fails at once, saying how to get it."""
    offline = hub_offline_reason()
    if offline is not None and not any(cache_dir.glob("ILSVRC___imagenet-1k*")):
        raise DatasetUnavailableError(
            f"imagenet is not available: the HF hub cannot be used ({offline}) and {cache_dir} holds no cached "
            f"{HUB_ID}. To get it: with internet, accept the dataset's terms on the hub, run `huggingface-cli login`, "
            "and run again (it caches under data/hf); or set dataset.path=<folder holding train/ and val/>."
        )
    import datasets

    splits = datasets.load_dataset(HUB_ID, cache_dir=str(cache_dir))
    train_tf, val_tf = imagenet_transforms(image_size, resize_size)
    return HubImages(splits["train"], train_tf), HubImages(splits["validation"], val_tf)


class IndexedDataset(Dataset):
    """Adds the sample index to each item, because batches are (x, y, idx) everywhere."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return x, y, index


class ImageFolderDataModule(L.LightningDataModule):
    """Pinned-memory worker loaders; Lightning adds a DistributedSampler under DDP and copies batches non_blocking.

    `batch_size` is per device. Shuffling is seeded by `seed` so data order is part of the run's identity.
    `drop_last` drops the training epoch's short last batch (evaluation keeps every image).
    """

    num_classes = 1000
    input_shape = (3, 224, 224)

    def __init__(
        self,
        path: str | None,
        batch_size: int,
        seed: int = 0,
        num_workers: int = 8,
        data_dir: str | Path = "data",
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        self.path, self.batch_size, self.seed, self.num_workers = path, batch_size, seed, num_workers
        self.drop_last = drop_last
        self.hub_cache = Path(data_dir) / "hf"

    def setup(self, stage: str | None = None) -> None:
        if hasattr(self, "train_set"):  # the folder scan takes minutes on ImageNet: do it once
            return
        train, val = load_imagenet_folders(self.path) if self.path else load_imagenet_hub(self.hub_cache)
        self.train_set, self.val_set = IndexedDataset(train), IndexedDataset(val)

    @property
    def num_train_samples(self) -> int:
        return len(self.train_set)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    test_dataloader = val_dataloader

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and self.drop_last,
            num_workers=self.num_workers,
            pin_memory=True,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
        )
