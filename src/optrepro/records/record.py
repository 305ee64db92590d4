"""The run record: one typed definition, its schema version, the migration of older records, and the one reader.

Every producer (a training run: records.schema.build_record; a structure-learning run: the same; a W&B run
without a record.json: results.wandb_runs.to_record) builds a `RunRecord`, which validates itself, and writes
its `to_dict()`. `record.json` is written once, when the run ends. Measurements made later (the loss landscape,
`python -m optrepro landscape`) go in files of their own beside it (`landscape.json`, MEASUREMENT_FILES) and are
merged into the record when it is read: their scalars into `metrics.final`, their data into `extra.<name>`.
`read_record` is the only function that reads a record; it migrates, merges and validates.

Schema versions: 1 (blocks a producer could not fill were sometimes left out; landscape figures were written
into record.json itself), 2 (every field present, null when unknown; later measurements in their own files),
3 (`recipe`: the run's canonical overrides, records.recipe; null when unknown, e.g. a run outside `run.py`).
Field list: docs/DESIGN.md, "Run records".
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any

from optrepro.errors import OptreproError
from optrepro.paths import REPO_ROOT

SCHEMA_VERSION = 3
RECORD_NAME = "record.json"
STATUSES = ("finished", "failed", "diverged", "interrupted")
MEASUREMENTS = ("landscape",)  # <run folder>/<name>.json, written after the run by the tool of that name
MEASUREMENT_FORMAT = 1


class InvalidRecordError(OptreproError, ValueError):
    """A record that is not readable JSON or does not follow the record definition; the message names each problem."""


def _is_mapping_or_none(value: Any) -> bool:
    return value is None or isinstance(value, dict)


@dataclass
class RunRecord:
    """One run as every tool reads it (docs/DESIGN.md lists what each block holds)."""

    run_id: str
    status: str
    config: dict[str, Any]
    config_hash: str
    setting_hash: str
    seed: int | None = None
    recipe: list[str] | None = None
    error: str | None = None
    repro: dict[str, Any] | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=lambda: {"final": {}, "best": {}})
    history: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None
    hardware: dict[str, Any] | None = None
    code: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    slurm: dict[str, Any] | None = None
    wandb: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidRecordError(f"run record {self.run_id!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every way this record departs from the definition (empty when it is valid)."""
        found = []
        if not (isinstance(self.run_id, str) and self.run_id):
            found.append(f"run_id {self.run_id!r} is not a non-empty string")
        if self.status not in STATUSES:
            found.append(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if not isinstance(self.config, dict):
            found.append("config is not a mapping")
        for name in ("config_hash", "setting_hash"):
            if not isinstance(getattr(self, name), str):
                found.append(f"{name} is not a string")
        if self.seed is not None and not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            found.append(f"seed {self.seed!r} is not an integer")
        if self.recipe is not None and not (
            isinstance(self.recipe, list) and all(isinstance(entry, str) for entry in self.recipe)
        ):
            found.append("recipe is neither a list of override strings nor null")
        if not (
            isinstance(self.metrics, dict) and all(isinstance(self.metrics.get(k), dict) for k in ("final", "best"))
        ):
            found.append("metrics is not {final: {...}, best: {...}}")
        if not (isinstance(self.history, list) and all(isinstance(row, dict) for row in self.history)):
            found.append("history is not a list of mappings")
        for name in ("repro", "timing", "hardware", "code", "versions", "slurm", "wandb"):
            if not _is_mapping_or_none(getattr(self, name)):
                found.append(f"{name} is neither a mapping nor null")
        if not isinstance(self.extra, dict):
            found.append("extra is not a mapping")
        for name in ("error", "started_at", "finished_at"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                found.append(f"{name} is neither a string nor null")
        if self.schema_version != SCHEMA_VERSION:
            found.append(f"schema_version {self.schema_version!r} is not {SCHEMA_VERSION} (read it with from_dict)")
        return found

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (shares the blocks with this object: no deep copy, reading is hot)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record in `data`, migrated from an older schema version; InvalidRecordError names what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidRecordError(f"top level is {type(data).__name__}, expected an object")
        migrated = migrate(dict(data))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(migrated) - known)
        missing = [name for name in ("run_id", "status", "config") if name not in migrated]
        if unknown or missing:
            raise InvalidRecordError(
                f"run record {migrated.get('run_id')!r}: "
                + "; ".join(
                    ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                    + ([f"missing required field(s) {', '.join(missing)}"] if missing else [])
                )
            )
        return cls(**migrated)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A record of any known schema version as the current one (a newer version is an error: update optrepro)."""
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InvalidRecordError(
            f"run record {data.get('run_id')!r} has schema_version {version!r}; this optrepro "
            f"reads versions 1..{SCHEMA_VERSION}: update optrepro"
        )
    if version == 1:
        # Version 1 let producers leave out blocks they could not fill (W&B runs: timing, versions, slurm, ...).
        data.setdefault("config_hash", "")
        data.setdefault("setting_hash", "")
        data.setdefault("seed", (data.get("config") or {}).get("seed"))
        metrics = data.get("metrics") or {}
        data["metrics"] = {"final": metrics.get("final") or {}, "best": metrics.get("best") or {}}
        data["extra"] = data.get("extra") or {}
        version = 2
    if version == 2:
        data.setdefault("recipe", None)  # written before runs recorded their overrides: `results recipes` fills it in
    data["schema_version"] = SCHEMA_VERSION
    return data


OUTSIDE_REPOSITORY = "<outside repository>"


def portable(data: dict[str, Any], *, run_dir: Path | None = None) -> dict[str, Any]:
    """A copy of a record, or of a measurement file beside it, without absolute paths of the machine that made it.

    A path inside the run folder becomes relative to it (`wandb/offline-run-...`); one inside the repository,
    relative to the repository root (`data`, `.`); any other keeps only its name, under `<outside repository>/`.
    The run folder is `run_dir` or, for a record, the folder named after its `run_id`; the repository is the
    record's `config.paths.root_dir` (this checkout for a measurement file). The config is left as the user wrote
    it but for its `paths` block, the machine's folders. Producers, `results collect` and `regression drift --record`
    apply it, so a committed record reads the same on every clone and names no one's machine. Paths are in no hash.
    """
    root_dir = ((data.get("config") or {}).get("paths") or {}).get("root_dir")
    root = PurePosixPath(root_dir) if root_dir and PurePosixPath(root_dir).is_absolute() else PurePosixPath(REPO_ROOT)
    folder = PurePosixPath(run_dir) if run_dir is not None else None

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        if isinstance(value, str) and value.startswith("/"):
            return _portable_path(PurePosixPath(value), folder, data.get("run_id"), root)
        return value

    made = {key: (value if key == "config" else rewrite(value)) for key, value in data.items()}
    if isinstance(data.get("config"), dict):
        made["config"] = {**data["config"]}
        if isinstance(data["config"].get("paths"), dict):
            made["config"]["paths"] = rewrite(data["config"]["paths"])
    return copy.deepcopy(made)


def _portable_path(path: PurePosixPath, run_dir: PurePosixPath | None, run_id: Any, root: PurePosixPath) -> str:
    if run_dir is not None and path.is_relative_to(run_dir):
        return path.relative_to(run_dir).as_posix()
    if isinstance(run_id, str) and run_id in path.parts[:-1]:
        return PurePosixPath(*path.parts[path.parts.index(run_id) + 1 :]).as_posix()
    if path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return f"{OUTSIDE_REPOSITORY}/{path.name}"


NOT_DETERMINISTIC = ("time/",)  # wall and CPU time: they differ between two runs of the same computation


def outcome(record: Mapping[str, Any]) -> dict[str, Any]:
    """`final/<name>` and `best/<name>` metrics without timings: what a CPU run reproduces bit for bit (same code,
    packages and CPU kernels), so two runs with another outcome computed something else."""
    metrics = record.get("metrics") or {}
    return {
        f"{kind}/{name}": value
        for kind in ("final", "best")
        for name, value in sorted((metrics.get(kind) or {}).items())
        if not name.startswith(NOT_DETERMINISTIC)
    }


def outcome_digest(record: Mapping[str, Any]) -> str | None:
    """A hash of the outcome the run wrote itself (no later measurement), or None where equal outcomes would not show
    the same computation: a run that did not finish, or one whose metrics are all whole numbers (counts such as a
    graph's SHD can coincide); a loss or an error rate written to the last bit cannot."""
    measured_after = tuple(f"final/{name}/" for name in MEASUREMENTS)  # merged in later, by their own settings
    values = {name: value for name, value in outcome(record).items() if not name.startswith(measured_after)}
    carries_bits = any(isinstance(v, float) and math.isfinite(v) and not v.is_integer() for v in values.values())
    if record.get("status") != "finished" or not carries_bits:
        return None
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def measurement_path(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / f"{name}.json"


def merge_measurement(record: dict[str, Any], name: str, measurement: Mapping[str, Any]) -> dict[str, Any]:
    """`record` with a measurement's scalars in metrics.final and its data in extra.<name> (a copy)."""
    if measurement.get("measurement") != name or not isinstance(measurement.get("metrics"), dict):
        raise InvalidRecordError(
            f"{name}.json is not a {name} measurement (expected measurement: {name}, metrics: {{}})"
        )
    merged = copy.deepcopy(record)
    merged["metrics"]["final"].update(measurement["metrics"])
    merged["extra"][name] = measurement.get("data")
    return merged


def read_record(location: Path | str) -> dict[str, Any] | None:
    """The record of a run folder (or of a record.json path), migrated, with later measurements merged, validated.

    None when there is no record.json; InvalidRecordError when it, or a measurement beside it, cannot be used.
    """
    path = Path(location)
    if path.is_dir():
        path = path / RECORD_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidRecordError(f"not readable JSON ({err})") from err
    record = RunRecord.from_dict(data).to_dict()
    for name in MEASUREMENTS:
        beside = measurement_path(path.parent, name)
        if beside.exists():
            try:
                measurement = json.loads(beside.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise InvalidRecordError(f"{beside.name} beside it is not readable JSON ({err})") from err
            record = merge_measurement(record, name, measurement)
    return record
