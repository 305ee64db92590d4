"""A CSV in the real datasets' format (a `date` column of hourly stamps, then one column per channel), for tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np


def write_csv(path: Path, rows: int, channels: int, seed: int) -> Path:
    """`rows` hourly rows of seeded random-walk channels named like ETT's (HUFL, ..., then OT last)."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.standard_normal((rows, channels)), axis=0) + 10 * rng.standard_normal(channels)
    start = datetime(2016, 7, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        handle.write(",".join(["date", *(f"c{i}" for i in range(channels - 1)), "OT"]) + "\n")
        for i, row in enumerate(values):
            stamp = (start + timedelta(hours=i)).strftime("%Y-%m-%d %H:%M:%S")
            handle.write(",".join([stamp, *(f"{v:.3f}" for v in row)]) + "\n")
    return path
