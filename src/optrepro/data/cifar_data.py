"""CIFAR-10/100: hub ids and label columns (`label` vs `fine_label`); loading is shared with other hub data."""

from __future__ import annotations

from pathlib import Path

from optrepro.data.hub_datasets import HubImageDataset, load_hub_images
from optrepro.data.splits import ArraySplits

CIFAR10 = HubImageDataset("cifar10", "uoft-cs/cifar10", "label", 10)
CIFAR100 = HubImageDataset("cifar100", "uoft-cs/cifar100", "fine_label", 100)


def load_cifar10(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    return load_hub_images(CIFAR10, dataset_cfg.get("path"), data_dir)


def load_cifar100(dataset_cfg, data_dir: str | Path) -> ArraySplits:
    return load_hub_images(CIFAR100, dataset_cfg.get("path"), data_dir)
