"""Datasets as in-memory tensors on the training device (plus ImageNet from folders); see docs/DESIGN.md."""

from optrepro.data.augment import AugmentConfig
from optrepro.data.batches import EvalBatches, TrainBatches
from optrepro.data.datamodule import TensorDataModule
from optrepro.data.imagenet_data import ImageFolderDataModule, load_imagenet_folders
from optrepro.data.label_noise import with_label_noise
from optrepro.data.registry import DATASET_NAMES, FOLDER_DATASETS, load_splits
from optrepro.data.splits import ArraySplits, dataset_info

__all__ = [
    "DATASET_NAMES",
    "FOLDER_DATASETS",
    "ArraySplits",
    "AugmentConfig",
    "EvalBatches",
    "ImageFolderDataModule",
    "TensorDataModule",
    "TrainBatches",
    "dataset_info",
    "load_imagenet_folders",
    "load_splits",
    "with_label_noise",
]
