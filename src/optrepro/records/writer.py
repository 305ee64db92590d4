"""Writes record.json (once, when a run ends) and later measurements beside it, atomically: a reader sees the old
file or the new one, never half of one. The one reader is records.record.read_record."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from optrepro.records.record import MEASUREMENT_FORMAT, MEASUREMENTS, RECORD_NAME, RunRecord, measurement_path


def _json_safe(value: Any) -> Any:
    """NaN and infinity are not JSON; a diverged run's metrics are stored as strings that say so."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(_json_safe(data), handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_record(run_dir: Path, record: RunRecord | dict[str, Any]) -> Path:
    """Validate `record` against the record definition, then write `<run_dir>/record.json`."""
    checked = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
    path = Path(run_dir) / RECORD_NAME
    write_json_atomic(path, checked.to_dict())
    return path


def write_measurement(run_dir: Path, name: str, metrics: dict[str, float], data: Any) -> Path:
    """A measurement made after the run, beside its record.json (which is left untouched); read_record merges it."""
    if name not in MEASUREMENTS:
        raise ValueError(f"unknown measurement {name!r}; add it to records.record.MEASUREMENTS so readers merge it")
    path = measurement_path(run_dir, name)
    write_json_atomic(path, {"format": MEASUREMENT_FORMAT, "measurement": name, "metrics": metrics, "data": data})
    return path
