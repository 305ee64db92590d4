"""Run records as pandas tables: the one place that knows how record.json maps to columns.

`load_records` gives one row per run (benchopt-style prefixes: `p_` config, `m_final_`/`m_best_`
metrics, `hw_`, `code_`, `slurm_`, `wandb_`, plus `timing_`, `versions_`, `repro_`; `outcome_digest` tells runs
that computed the same bits), and
`load_history` the per-epoch curves in long format (one row per run, epoch and metric).
A record that cannot be read is reported with a warning and skipped: one bad file must never
hide the rest of a sweep.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from optrepro.records.recipe import recipe_key
from optrepro.records.record import RECORD_NAME, InvalidRecordError, outcome_digest, read_record

IDENTITY_FIELDS = (
    "schema_version",
    "run_id",
    "status",
    "error",
    "seed",
    "config_hash",
    "setting_hash",
    "started_at",
    "finished_at",
)
# record block -> column prefix; each block is a flat mapping of name -> value.
FLAT_BLOCKS = {
    "repro": "repro_",
    "timing": "timing_",
    "hardware": "hw_",
    "code": "code_",
    "versions": "versions_",
    "slurm": "slurm_",
    "wandb": "wandb_",
}


class CorruptRecordWarning(UserWarning):
    """A record.json that is not valid JSON or does not follow the record definition; it was skipped."""


def find_record_files(root: Path | str) -> list[Path]:
    """Every record.json under `root` (or `root` itself when it is a file; none when it does not exist)."""
    root = Path(root)
    if not root.exists():
        return []
    if root.is_file():
        return [root]
    return sorted(root.rglob(RECORD_NAME))


def iter_records(root: Path | str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(path, record) for every valid record under `root` (records.record.read_record: migrated, measurements
    merged); an invalid one is skipped with a CorruptRecordWarning naming the file and the problem."""
    for path in find_record_files(root):
        try:
            record = read_record(path)
        except InvalidRecordError as err:
            _warn_skip(path, str(err))
            continue
        if record is not None:
            yield path, record


def load_records(root: Path | str) -> pd.DataFrame:
    """One row per record.json found recursively under `root`, sorted by run_id."""
    return records_to_frame(iter_records(root))


def read_stores(roots: Iterable[Path | str]) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every run under any of `roots`, read once (a run found twice is read from the first root)."""
    seen: dict[str, tuple[Path, dict[str, Any]]] = {}
    for root in roots:
        for path, record in iter_records(root):
            seen.setdefault(record["run_id"], (path, record))
    return list(seen.values())


def load_records_from(roots: Iterable[Path | str]) -> pd.DataFrame:
    """One row per run found under any of `roots` (a run found twice is read from the first root)."""
    return records_to_frame(read_stores(roots))


def records_to_frame(records: Iterable[tuple[Path | str, Mapping[str, Any]]]) -> pd.DataFrame:
    """The table for (source path, record) pairs; shared by every source (run folders, W&B)."""
    rows = [flatten_record(record, source=str(path)) for path, record in records]
    if not rows:
        return pd.DataFrame(columns=[*IDENTITY_FIELDS, "record_path", "config_json", "recipe", "outcome_digest"])
    return pd.DataFrame(rows).sort_values("run_id", kind="stable").reset_index(drop=True)


def flatten_record(record: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """One table row: identity fields, then prefixed blocks; `config_json` keeps the config lossless."""
    row: dict[str, Any] = {name: record.get(name) for name in IDENTITY_FIELDS}
    row["record_path"] = source
    row["config_json"] = json.dumps(record["config"], sort_keys=True)
    row["recipe"] = recipe_key(record.get("recipe"))
    row["outcome_digest"] = outcome_digest(record)
    for key, value in _flatten_mapping(record["config"]):
        row[f"p_{key}"] = value
    metrics = record.get("metrics") or {}
    for kind in ("final", "best"):
        for name, value in (metrics.get(kind) or {}).items():
            row[f"m_{kind}_{name}"] = _metric_value(value)
    for block, prefix in FLAT_BLOCKS.items():
        for name, value in (record.get(block) or {}).items():
            row[f"{prefix}{name}"] = _cell(value)
    return row


def load_history(root: Path | str) -> pd.DataFrame:
    """Per-epoch curves in long format: run_id, epoch, step, metric, value (one row per point)."""
    return history_frame(iter_records(root))


def load_history_from(roots: Iterable[Path | str]) -> pd.DataFrame:
    """The curves of every run under any of `roots` (a run found twice is read from the first root)."""
    return history_frame(read_stores(roots))


def history_frame(records: Iterable[tuple[Path | str, Mapping[str, Any]]]) -> pd.DataFrame:
    """The curves of (source path, record) pairs in long format."""
    rows = []
    for _, record in records:
        for point in record.get("history") or []:
            for metric, value in point.items():
                if metric in ("epoch", "step"):
                    continue
                rows.append(
                    {
                        "run_id": record["run_id"],
                        "epoch": point.get("epoch"),
                        "step": point.get("step"),
                        "metric": metric,
                        "value": _metric_value(value),
                    }
                )
    columns = ["run_id", "epoch", "step", "metric", "value"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["run_id", "metric", "epoch"], kind="stable").reset_index(drop=True)


def _flatten_mapping(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten_mapping(value, f"{dotted}.")
        else:
            yield dotted, _cell(value)


def _cell(value: Any) -> Any:
    """Scalars stay as they are; lists and mappings become canonical JSON so columns keep one type."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _metric_value(value: Any) -> float:
    """Metrics as floats; JSON has no NaN, so writers may store null or the string "nan"."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _warn_skip(path: Path, reason: str) -> None:
    warnings.warn(
        f"skipping run record {path}: {reason}; fix or delete the file (a run that ended "
        f"writes it atomically, so a broken one comes from a copy or a manual edit)",
        CorruptRecordWarning,
        stacklevel=3,
    )
