"""W&B runs as run records, for runs whose record.json is missing (killed jobs, runs on other machines).

Offline runs are read from their transaction log; online runs through the W&B API. Both become the
record format of docs/DESIGN.md, so everything downstream reads one kind of thing. What W&B cannot
tell (timing, code commit) stays null, and `status` comes from the run's exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from optrepro.config import config_hash, setting_hash
from optrepro.records.record import SCHEMA_VERSION, RunRecord

RECORD_ID_PREFIX = "wandb-"
# The block optrepro.tracking adds to a W&B run's config to tie it to its record.json (not part of the config).
IDENTITY_KEY = "record_identity"
API_STATES = {"finished": "finished", "crashed": "failed", "failed": "failed", "killed": "interrupted"}


@dataclass
class WandbRun:
    """What a W&B run tells about itself, whatever it was read from."""

    run_id: str
    project: str
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    status: str
    mode: str
    dir: str | None = None
    path: str | None = None
    device_names: list[str] = field(default_factory=list)
    name: str | None = None
    group: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)


def find_offline_logs(root: Path) -> list[Path]:
    """Every `run-<id>.wandb` under `root` (offline and online run folders alike)."""
    return sorted(Path(root).rglob("run-*.wandb"))


def read_offline_run(log_path: Path) -> WandbRun:
    """A run from its transaction log: config, final summary, history rows, exit status, hardware."""
    from optrepro.results.wandb_log import iter_log_records  # imports W&B's protobufs: only when reading a log

    folder = Path(log_path).parent  # `<run folder>/wandb/offline-run-*`: kept relative to the run folder, as records do
    run = WandbRun("", "", {}, {}, [], "interrupted", "offline", dir=f"{folder.parent.name}/{folder.name}")
    for record in iter_log_records(log_path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.project = record.run.run_id, record.run.project
            run.name, run.group = record.run.display_name or None, record.run.run_group or None
            run.job_type, run.tags = record.run.job_type or None, list(record.run.tags)
            _apply(run.config, record.run.config.update, record.run.config.remove)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply(row, record.history.item, ())
            run.history.append(row)
        elif kind == "environment":
            gpus = [gpu.name for gpu in record.environment.gpu_nvidia]
            run.device_names = gpus or run.device_names or [record.environment.cpu.model]
        elif kind == "exit":
            run.status = "finished" if record.exit.exit_code == 0 else "failed"
    return run


def api_runs(project_path: str, api: Any = None) -> Iterator[WandbRun]:
    """Runs of `entity/project` through the W&B API (needs a network and an API key)."""
    if api is None:
        import wandb

        api = wandb.Api()
    for run in api.runs(project_path):
        yield WandbRun(
            run_id=run.id,
            project=run.project,
            config=dict(run.config),
            summary=dict(run.summary),
            history=list(run.scan_history()),
            status=API_STATES.get(run.state, "interrupted"),
            mode="online",
            path="/".join(run.path),
            name=run.name,
            group=run.group,
            job_type=run.job_type,
            tags=list(run.tags),
        )


def to_record(run: WandbRun) -> dict[str, Any]:
    """The run as a DESIGN.md record; run_id `wandb-<id>` so it never collides with a run folder's id. The
    `record_identity` block optrepro adds to a run's config is not part of the run's config (nor of its hashes)."""
    config = {key: value for key, value in run.config.items() if not key.startswith("_") and key != IDENTITY_KEY}
    cfg = OmegaConf.create(config)
    hardware = config.get("hardware") or {}
    train = config.get("train") or {}
    world_size = int(hardware.get("devices", 1)) * int(hardware.get("num_nodes", 1))
    return RunRecord.from_dict(
        {
            "run_id": RECORD_ID_PREFIX + run.run_id,
            "status": run.status,
            "error": None,
            "repro": config.get("repro"),
            "seed": config.get("seed"),
            "recipe": (run.config.get(IDENTITY_KEY) or {}).get("recipe"),
            "config": config,
            "config_hash": config_hash(cfg),
            "setting_hash": setting_hash(cfg),
            "metrics": {"final": _public(run.summary), "best": {}},
            "history": [_public(row) | _epoch_step(row) for row in run.history],
            "timing": None,
            "hardware": {
                "accelerator": hardware.get("accelerator"),
                "device_names": run.device_names,
                "world_size": world_size,
                "num_nodes": hardware.get("num_nodes"),
                "per_device_batch_size": int(train["batch_size"]) // world_size if "batch_size" in train else None,
                "global_batch_size": train.get("batch_size"),
                "precision": hardware.get("precision"),
            },
            "code": None,
            "wandb": {
                "run_id": run.run_id,
                "project": run.project,
                "path": run.path,
                "mode": run.mode,
                "dir": run.dir,
                "name": run.name,
                "group": run.group,
            },
            "schema_version": SCHEMA_VERSION,
        }
    ).to_dict()


def _apply(target: dict[str, Any], updates: Iterable[Any], removals: Iterable[Any]) -> None:
    """Apply W&B key updates (`key` or `nested_key` path, JSON value) to a nested dict."""
    for item in updates:
        path = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    for item in removals:
        path = [item.key] if item.key else list(item.nested_key)
        node = target
        for part in path[:-1]:
            node = node.get(part, {})
        node.pop(path[-1], None)


def _public(values: Mapping[str, Any]) -> dict[str, Any]:
    """Logged metrics only: W&B's own keys start with `_`; nested values are not metrics."""
    return {k: v for k, v in values.items() if not k.startswith("_") and not isinstance(v, (dict, list))}


def _epoch_step(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"epoch": row.get("epoch"), "step": row.get("trainer/global_step", row.get("_step"))}
