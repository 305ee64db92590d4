"""Builders for claims tests: a tiny Hydra config tree, claims files, and hand-made run records.

Records are made from configs composed as `run.py` composes them and carry the recipe of the overrides they were
made from, so matching runs to arms is exercised for real; everything else in a record (metrics, hardware, code commit,
status) is set by the test to build each edge case.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from optrepro.config import config_hash, semantic_config, setting_hash
from optrepro.records.provenance import papers_used, source_hash
from optrepro.records.recipe import recipe
from optrepro.records.record import SCHEMA_VERSION, RunRecord
from optrepro.records.writer import write_json_atomic

CONFIG_FILES = {
    "train.yaml": """
        defaults:
          - _self_
          - optimizer: sgd
          - hardware: cpu
          - paths: default
        seed: 0
        repro: {paper: null, name: null, tier: null, arm: null}
        train: {epochs: 2, batch_size: 128}
        """,
    "optimizer/sgd.yaml": "name: sgd\nlr: 0.1\n",
    "optimizer/sam.yaml": "name: sam\nlr: 0.1\nrho: 0.05\n",
    "hardware/cpu.yaml": "accelerator: cpu\ndevices: 1\nnum_nodes: 1\nprecision: 32-true\n",
    "hardware/gpu8.yaml": "accelerator: gpu\ndevices: 8\nnum_nodes: 1\nprecision: bf16-mixed\n",
    "paths/default.yaml": "runs_dir: ${hydra:runtime.cwd}/runs\n",
}

SAM_CLAIMS = """
    paper: sam
    title: "Sharpness-Aware Minimization"
    citation: "Foret et al., ICLR 2021"
    claims:
      - id: ordering
        source: {where: "Table 1", page: 6}
        statement: "SAM lowers test error"
        tier: cpu
        seeds: 3
        metric: test/error
        arms:
          sam: {overrides: [optimizer=sam]}
          sgd: {overrides: [optimizer=sgd]}
        check: {kind: ordering, better: sam, than: sgd, direction: lower}
        reported: {sam: "2.7±0.1", sgd: "3.5±0.1"}
      - id: value
        source: {where: "Table 1", page: 6}
        statement: "SAM reaches 2.7% error"
        tier: cpu
        seeds: 3
        metric: test/error
        arms:
          sam: {overrides: [optimizer=sam]}
        check: {kind: value, arm: sam, reported: 2.7, tolerance: 0.3, tolerance_reason: "3 seeds; paper std 0.1"}
    """


def write_config_tree(root: Path) -> Path:
    for name, text in CONFIG_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def write_claims(reproductions: Path, text: str = SAM_CLAIMS, paper: str = "sam") -> Path:
    path = reproductions / paper / "claims.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def compose_run(config_dir: Path, overrides: list[str]) -> DictConfig:
    """The composed config; seed overrides are applied without recomposing (Hydra compose takes ~0.3 s)."""
    seeds = [o for o in overrides if o.startswith("seed=")]
    cfg = _compose(str(config_dir), tuple(o for o in overrides if o not in seeds))
    return OmegaConf.merge(cfg, {"seed": int(seeds[-1].split("=")[1])}) if seeds else cfg


@functools.cache
def _compose(config_dir: str, overrides: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("train", overrides=list(overrides))


def make_record(
    cfg: DictConfig,
    *,
    run_id: str,
    metrics: dict[str, float],
    status: str = "finished",
    commit: str = "c0ffee0000000000",
    source_hash: str | None = None,
    finished_at: str = "2025-01-01T00:00:00Z",
    device: str = "x86_64",
    cpu_kernels: str | None = None,
    history: list[dict[str, Any]] | None = None,
    timing: dict[str, float] | None = None,
    wandb: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """A record (records.record.RunRecord, validated) for the composed `cfg`, with the recipe of the `overrides`
    it was composed from (null when not given); hardware fields follow cfg.hardware."""
    world = int(cfg.hardware.devices) * int(cfg.hardware.num_nodes)
    return RunRecord.from_dict(
        {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": status,
            "error": None,
            "repro": {"paper": "sam", "name": None, "tier": None, "arm": None},
            "seed": int(cfg.seed),
            "recipe": None if overrides is None else list(recipe(overrides)),
            "config": semantic_config(cfg),
            "config_hash": config_hash(cfg),
            "setting_hash": setting_hash(cfg),
            "metrics": {"final": metrics, "best": metrics},
            "history": history or [],
            "timing": timing or {"time_per_step_s": 0.1},
            "hardware": {
                "accelerator": cfg.hardware.accelerator,
                "device_names": [device] * world,
                "world_size": world,
                "num_nodes": int(cfg.hardware.num_nodes),
                "devices_per_node": int(cfg.hardware.devices),
                "per_device_batch_size": int(cfg.train.batch_size) // world,
                "global_batch_size": int(cfg.train.batch_size),
                "precision": cfg.hardware.precision,
                "hostname": "test",
                "cpu_count": 2,
            }
            | ({"cpu_kernels": cpu_kernels} if cpu_kernels else {}),
            "code": {"git_commit": commit, "git_dirty": False, "package_version": "0.1.0"}
            | ({"source_hash": source_hash} if source_hash else {}),
            "versions": {"python": "3.11"},
            "slurm": None,
            "wandb": wandb,
            "started_at": finished_at,
            "finished_at": finished_at,
        }
    ).to_dict()


def store(root: Path, record: dict[str, Any]) -> Path:
    path = root / record["run_id"] / "record.json"
    write_json_atomic(path, record)
    return path


@functools.cache
def _version_of(papers: tuple[str, ...] | None) -> str:
    return source_hash(papers)


def launch_version(cfg: DictConfig) -> str:
    """The code version a run of `cfg` records today (records.provenance.code_info), what `claims run` plans at."""
    return _version_of(papers_used(cfg))


class RecordFactory:
    """Writes records of (arm overrides, seed) into `root` with one call per run, at today's code version unless the
    test names another (`commit=`, with or without `source_hash=`)."""

    def __init__(self, config_dir: Path, root: Path) -> None:
        self.config_dir, self.root = config_dir, root
        self.count = 0

    def add(self, overrides: list[str], seed: int, metrics: dict[str, float], **fields: Any) -> dict[str, Any]:
        self.count += 1
        cfg = compose_run(self.config_dir, [*overrides, f"seed={seed}"])
        run_id = fields.pop("run_id", f"run{self.count:03d}")
        if "commit" not in fields:  # a test naming a commit means another code version than today's
            fields.setdefault("source_hash", launch_version(cfg))
        record = make_record(cfg, run_id=run_id, metrics=metrics, overrides=[*overrides, f"seed={seed}"], **fields)
        store(self.root, record)
        return record
