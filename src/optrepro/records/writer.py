"""Writes record.json atomically: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

RECORD_NAME = "record.json"


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


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    path = Path(run_dir) / RECORD_NAME
    write_json_atomic(path, record)
    return path


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD_NAME
    return json.loads(path.read_text()) if path.exists() else None
