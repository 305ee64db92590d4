"""Load an image dataset published on the Hugging Face hub, or a local copy of it, into ArraySplits once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optrepro.data import hf_images
from optrepro.data.split_cache import cache_file, load_cached_splits, save_cached_splits
from optrepro.data.splits import ArraySplits, channel_stats
from optrepro.errors import DatasetUnavailableError

HOW_TO_GET = (
    "To get it: run once on a machine with internet access (it is downloaded and cached under {data_dir}), "
    "or copy the data here and set dataset.path=<folder>, a folder written by "
    "datasets.DatasetDict.save_to_disk or holding the hub's parquet files (train-*.parquet, test-*.parquet)."
)


@dataclass(frozen=True)
class HubImageDataset:
    """Where an image dataset lives on the hub and how its label column is called."""

    name: str
    hub_id: str
    label_column: str
    num_classes: int
    offline_source: str = ""  # a way to get the data without the hub, named first when it is missing


def load_hub_images(
    spec: HubImageDataset, path: str | None, data_dir: str | Path, looked: tuple[str, ...] = ("dataset.path (not set)",)
) -> ArraySplits:
    """From `path` when set, else the hub (cached under data_dir/hf); converted once to a `.pt` cache.

    `looked` lists places the caller already searched, so a failure message names every one of them.
    """
    data_dir = Path(data_dir)
    source = f"path:{Path(path).expanduser().resolve()}" if path else f"hub:{spec.hub_id}"
    cached = cache_file(data_dir, spec.name, source)
    splits = load_cached_splits(cached)
    if splits is None:
        folder = Path(path).expanduser() if path else hub_folder(spec, data_dir, looked)
        try:
            if not folder.is_dir():
                raise FileNotFoundError(f"dataset.path={path} does not exist or is not a folder")
            tables = hf_images.read_local_copy(folder, spec.label_column)
        except FileNotFoundError as err:
            raise DatasetUnavailableError(f"{spec.name}: {err}. " + HOW_TO_GET.format(data_dir=data_dir)) from err
        splits = splits_from_tables(spec, tables)
        save_cached_splits(cached, splits)
    return splits


def hub_folder(spec: HubImageDataset, data_dir: Path, looked: tuple[str, ...]) -> Path:
    hub_cache = data_dir / "hf"
    folder, note = hf_images.fetch_hub_parquet(spec.hub_id, hub_cache)
    if folder is None:
        raise DatasetUnavailableError(
            f"{spec.name} is not available. Looked in: {'; '.join(looked)}; "
            f"the converted-tensor cache {data_dir / 'tensors'} (no file); "
            f"the Hugging Face cache {hub_cache} for {spec.hub_id} ({note}). "
            + spec.offline_source
            + HOW_TO_GET.format(data_dir=data_dir)
        )
    return folder


def splits_from_tables(spec: HubImageDataset, tables: dict) -> ArraySplits:
    (x_train, y_train), (x_test, y_test) = tables["train"], tables["test"]
    mean, std = channel_stats(x_train)
    return ArraySplits(x_train, y_train, x_test, y_test, spec.num_classes, spec.name, mean, std)
