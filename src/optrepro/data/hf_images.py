"""Image-classification splits from Hugging Face data: a `save_to_disk` folder, a parquet folder, or the hub.

All three end as Arrow tables with an encoded-image column, so one decoder serves them. The hub is reached
through `huggingface_hub.snapshot_download` of the parquet files, which can answer "cached or not" from
disk at once; a connectivity probe first keeps a machine without internet from waiting on timeouts.
"""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch import Tensor

SPLITS = ("train", "test")
IMAGE_COLUMNS = ("img", "image")
HUB_PROBE_TIMEOUT_S = 3.0
TRUTHY = {"1", "on", "yes", "true"}


def hub_offline_reason() -> str | None:
    """Why the hub cannot be used right now (offline env flag, or no connection), or None if it can."""
    for flag in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(flag, "").strip().lower() in TRUTHY:
            return f"{flag}={os.environ[flag]}"
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return None  # behind a proxy a direct probe proves nothing; rely on the hub client's timeouts
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as err:
        return f"{host} unreachable ({err})"
    return None


def fetch_hub_parquet(hub_id: str, cache_dir: Path) -> tuple[Path | None, str]:
    """Folder of the hub dataset's parquet files (downloaded, or from cache when offline) and a status note."""
    from huggingface_hub import snapshot_download

    offline_reason = hub_offline_reason()
    try:
        folder = snapshot_download(
            hub_id,
            repo_type="dataset",
            cache_dir=cache_dir,
            allow_patterns=["*.parquet"],
            local_files_only=offline_reason is not None,
        )
    except OSError as err:
        note = f"not cached; {offline_reason}" if offline_reason else f"download failed: {type(err).__name__}: {err}"
        return None, note
    return Path(folder), "ok"


def read_local_copy(path: Path, label_column: str) -> dict[str, tuple[Tensor, Tensor]]:
    """Train/test (images, labels) from a `DatasetDict.save_to_disk` folder or a folder of parquet files."""
    if (path / "dataset_dict.json").is_file():
        return read_saved_dataset_dict(path, label_column)
    return read_parquet_folder(path, label_column)


def read_saved_dataset_dict(path: Path, label_column: str) -> dict[str, tuple[Tensor, Tensor]]:
    import datasets

    dataset_dict = datasets.load_from_disk(str(path))
    missing = [split for split in SPLITS if split not in dataset_dict]
    if missing:
        raise ValueError(f"{path}: saved DatasetDict has splits {list(dataset_dict)}, missing {missing}")
    return {
        split: decode_table(dataset_dict[split].with_format("arrow")[:], label_column, f"{path}[{split}]")
        for split in SPLITS
    }


def read_parquet_folder(path: Path, label_column: str) -> dict[str, tuple[Tensor, Tensor]]:
    splits = {}
    for split in SPLITS:
        files = split_parquet_files(path, split)
        if not files:
            raise FileNotFoundError(
                f"{path}: no parquet files for split {split!r} (expected names like {split}-00000-of-00001.parquet "
                f"or a {split}/ folder), and no dataset_dict.json from datasets.save_to_disk"
            )
        table = pa.concat_tables(pq.read_table(f) for f in files)
        splits[split] = decode_table(table, label_column, f"{path}[{split}]")
    return splits


def split_parquet_files(folder: Path, split: str) -> list[Path]:
    """Parquet shards of one split in hub layouts: `<cfg>/train-0000x-of-0000n.parquet` or `train/*.parquet`."""
    return sorted(f for f in folder.rglob("*.parquet") if f.name.startswith(f"{split}-") or f.parent.name == split)


def decode_table(table: pa.Table, label_column: str, source: str) -> tuple[Tensor, Tensor]:
    """uint8 N x C x H x W images and int64 labels from a table with an encoded-image struct column."""
    image_column = next((c for c in IMAGE_COLUMNS if c in table.column_names), None)
    if image_column is None or label_column not in table.column_names:
        raise ValueError(
            f"{source}: expected an image column ({' or '.join(IMAGE_COLUMNS)}) and label column "
            f"{label_column!r}; found columns {table.column_names}"
        )
    images = table.column(image_column).combine_chunks()
    encoded = images.field("bytes").to_pylist()
    paths = images.field("path").to_pylist()
    arrays = [decode_image(data, file) for data, file in zip(encoded, paths, strict=True)]
    stacked = np.stack([a if a.ndim == 3 else a[:, :, None] for a in arrays])
    x = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(table.column(label_column).to_numpy(), dtype=torch.int64)
    return x, y


def decode_image(data: bytes | None, file: str | None) -> np.ndarray:
    image = Image.open(io.BytesIO(data) if data is not None else file)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)
