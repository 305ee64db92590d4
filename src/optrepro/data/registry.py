"""`load_splits`: dataset name -> loader (or the node's own `loader`), then label noise; the one entry point the
builders call. A paper brings a dataset of its own as a function (dataset_cfg, data_dir) -> ArraySplits in its
folder, named by `dataset.loader` in its dataset config
(reproductions/gradient_starvation/configs/dataset/colored_digits.yaml)."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import get_method

from optrepro.data.cifar_data import load_cifar10, load_cifar100
from optrepro.data.digits_data import load_digits_splits
from optrepro.data.fashion_mnist_data import load_fashion_mnist
from optrepro.data.label_noise import with_label_noise
from optrepro.data.mnist1d_data import load_mnist1d
from optrepro.data.modular_data import load_modular
from optrepro.data.splits import ArraySplits
from optrepro.data.subset import with_train_subset
from optrepro.data.synthetic_data import load_synthetic
from optrepro.data.two_moons_data import load_two_moons
from optrepro.data.validation import with_validation_split
from optrepro.errors import InvalidConfigError, OptreproError, UnknownChoiceError
from optrepro.paths import import_reproductions

LOADERS = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits_splits,
    "mnist1d": load_mnist1d,
    "modular_addition": load_modular,
    "synthetic": load_synthetic,
    "two_moons": load_two_moons,
}
# Too large for memory: served by ImageFolderDataModule instead of ArraySplits.
FOLDER_DATASETS = ("imagenet",)
DATASET_NAMES = (*LOADERS, *FOLDER_DATASETS)


def dataset_loader(dotted: str):
    """The function a `dataset.loader` names (module.function), or a ConfigError that says which it is."""
    import_reproductions()
    try:
        return get_method(dotted)
    except Exception as err:  # Hydra wraps import and attribute errors alike
        raise InvalidConfigError(
            "dataset.loader",
            f"cannot import {dotted!r} ({type(err).__name__})",
            "name a function (dataset_cfg, data_dir) -> ArraySplits, e.g. reproductions.<paper>.<module>.<function>",
        ) from err


def load_splits(dataset_cfg, data_dir: str | Path, seed: int | None = None) -> ArraySplits:
    """Load `dataset_cfg.name`, keep `dataset.train_subset` samples if set, hold out `dataset.val_fraction` of them as
    the evaluation set, and apply `dataset.label_noise` to the rest; the last two use the run `seed`."""
    name = dataset_cfg.get("name")
    if name in FOLDER_DATASETS:
        raise OptreproError(
            f"{name} does not fit in memory and has no ArraySplits; build ImageFolderDataModule(dataset.path, ...)"
        )
    loader = dataset_cfg.get("loader")
    if loader is None and name not in LOADERS:
        raise UnknownChoiceError("dataset.name", name, DATASET_NAMES)
    splits = (dataset_loader(loader) if loader is not None else LOADERS[name])(dataset_cfg, data_dir)
    subset = dataset_cfg.get("train_subset")
    if subset:
        splits = with_train_subset(splits, int(subset), int(dataset_cfg.get("train_subset_seed", 0)))
    val_fraction = float(dataset_cfg.get("val_fraction") or 0.0)
    noise = float(dataset_cfg.get("label_noise") or 0.0)
    if (val_fraction or noise) and seed is None:
        raise ValueError(
            "dataset.val_fraction and dataset.label_noise need the run seed: call load_splits(..., seed=cfg.seed)"
        )
    if val_fraction:
        splits = with_validation_split(splits, val_fraction, seed)
    if noise:
        splits = with_label_noise(splits, noise, seed)
    return splits
