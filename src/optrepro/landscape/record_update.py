"""Landscape results go in `landscape.json` beside the run's record.json, which stays byte-identical.

records.record.read_record merges them when the record is read: the scalars into metrics.final (claims read
them), the slice data and settings into extra.landscape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optrepro.records.writer import write_measurement

MEASUREMENT = "landscape"


def write_landscape(run_dir: Path, results: dict[str, Any]) -> Path:
    """Atomic: an earlier landscape.json stays whole if anything fails before the rename; a new one replaces it."""
    return write_measurement(Path(run_dir), MEASUREMENT, results["metrics"], results)
