"""`results collect`: every run record we can find -> one table with provenance, and a reviewable store.

Sources, in order of trust: record.json files in run folders; W&B offline transaction logs of runs
that left no record.json (a job killed before it could write one); the W&B API for runs that only
exist online. A run found in several places is taken from the most trusted one.
The committed store (`--into results/records`) holds one `<paper>/<run_id>/record.json` per run:
plain text a reviewer can diff, and the only input of `results report`, so RESULTS.md regenerates
byte for byte from what is in git.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from google.protobuf.message import DecodeError

from optrepro.records.record import RECORD_NAME, portable
from optrepro.records.table import iter_records
from optrepro.records.writer import write_json_atomic
from optrepro.results.wandb_log import WandbLogError
from optrepro.results.wandb_runs import (
    WandbRun,
    api_runs,
    find_offline_logs,
    read_offline_run,
    to_record,
)

NO_PAPER = "_adhoc"


class WandbRunSkipped(UserWarning):
    """A W&B run folder that could not be read; it was skipped."""


def gather_records(
    roots: Sequence[Path], *, wandb_projects: Sequence[str] = (), api: Any = None
) -> list[tuple[str, dict[str, Any]]]:
    """(source, record) pairs from run folders under `roots`, their W&B logs, and W&B projects."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for root in roots:
        for path, record in iter_records(root):
            found.setdefault(record["run_id"], (str(path), record))
    known_wandb_ids = {(record.get("wandb") or {}).get("run_id") for _, record in found.values()}
    wandb_runs: list[tuple[str, WandbRun]] = []
    for root in roots:
        for log_path in find_offline_logs(root):
            try:
                wandb_runs.append((str(log_path), read_offline_run(log_path)))
            except (OSError, WandbLogError, DecodeError) as err:
                warnings.warn(f"skipping W&B run log {log_path}: {err}", WandbRunSkipped, stacklevel=2)
    for project in wandb_projects:
        wandb_runs.extend((f"wandb:{run.path}", run) for run in api_runs(project, api))
    for source, run in wandb_runs:
        if run.run_id not in known_wandb_ids:
            known_wandb_ids.add(run.run_id)
            record = to_record(run)
            found.setdefault(record["run_id"], (source, record))
    return [found[run_id] for run_id in sorted(found)]


def write_parquet(table: pd.DataFrame, path: Path) -> Path:
    """Parquet needs one type per column: columns mixing types (e.g. 0.1 and "auto") become JSON text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fixed = table.copy()
    for column in fixed.select_dtypes(include="object").columns:
        kinds = {type(v) for v in fixed[column] if v is not None and not (isinstance(v, float) and v != v)}
        if len(kinds) > 1:
            fixed[column] = [None if v is None else json.dumps(v) for v in fixed[column]]
    fixed.to_parquet(path, index=False)
    return path


def store_records(records: Iterable[tuple[str, dict[str, Any]]], into: Path) -> list[Path]:
    """Copy each record to `<into>/<paper>/<run_id>/record.json` (overwriting an older copy of that run)."""
    written = []
    for _, record in records:
        paper = (record.get("repro") or {}).get("paper") or NO_PAPER
        target = Path(into) / paper / record["run_id"] / RECORD_NAME
        write_json_atomic(target, portable(record))
        written.append(target)
    return written
