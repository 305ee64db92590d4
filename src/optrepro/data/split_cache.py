"""A `.pt` file per converted dataset, so image decoding happens once and later runs load in seconds."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from optrepro.data.splits import ArraySplits


def cache_file(data_dir: str | Path, name: str, source: str) -> Path:
    """Cache path keyed by the source, so pointing `dataset.path` elsewhere never reuses a stale file."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:8]
    return Path(data_dir) / "tensors" / f"{name}-{digest}.pt"


def load_cached_splits(path: Path) -> ArraySplits | None:
    if not path.is_file():
        return None
    return ArraySplits(**torch.load(path, weights_only=True))


def save_cached_splits(path: Path, splits: ArraySplits) -> None:
    """Write atomically (temp file + rename): parallel jobs may convert the same dataset at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(dataclasses.asdict(splits), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
