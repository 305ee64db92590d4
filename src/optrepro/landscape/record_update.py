"""Adds landscape results to a run's record.json: scalars in metrics.final (claims read them), data in extra."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from optrepro.records.writer import write_record


def with_landscape(record: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """A copy of `record` with the results; a second measurement replaces the first."""
    updated = copy.deepcopy(record)
    updated.setdefault("metrics", {}).setdefault("final", {}).update(results["metrics"])
    updated.setdefault("extra", {})["landscape"] = results
    return updated


def write_landscape(run_dir: Path, record: dict[str, Any], results: dict[str, Any]) -> Path:
    """Atomic: the old record stays whole if anything fails before the rename."""
    return write_record(Path(run_dir), with_landscape(record, results))
