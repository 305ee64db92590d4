"""Building a run's record from its config, history and provenance (the definition: records.record.RunRecord)."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from optrepro.config import config_hash, per_device_batch_size, setting_hash, world_size
from optrepro.records import provenance
from optrepro.records.record import RunRecord, portable

# Metrics whose best value over epochs is the largest; the rest are best when smallest.
HIGHER_IS_BETTER = ("acc",)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def best_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    """Best value over epochs of every logged metric (max for accuracies, min otherwise), ignoring NaN."""
    best: dict[str, float] = {}
    for row in history:
        for name, value in row.items():
            if name in ("epoch", "step") or name.startswith("time/") or name == "lr":
                continue
            if not isinstance(value, (int, float)) or math.isnan(value):
                continue
            higher = name.rsplit("/", 1)[-1] in HIGHER_IS_BETTER
            if name not in best or (value > best[name] if higher else value < best[name]):
                best[name] = value
    return best


def final_metrics(history: list[dict[str, float]]) -> dict[str, float]:
    final: dict[str, float] = {}
    for row in history:  # later rows overwrite earlier ones; test metrics come from the last evaluation
        final.update({k: v for k, v in row.items() if k not in ("epoch", "step")})
    return final


def hardware_info(cfg: DictConfig, device_names: list[str]) -> dict[str, Any]:
    return {
        "name": cfg.hardware.name,
        "accelerator": cfg.hardware.accelerator,
        "device_names": device_names,
        "world_size": world_size(cfg),
        "num_nodes": int(cfg.hardware.num_nodes),
        "devices_per_node": int(cfg.hardware.devices),
        "per_device_batch_size": per_device_batch_size(cfg),
        "global_batch_size": int(cfg.train.batch_size),
        "precision": str(cfg.hardware.precision),
        "hostname": provenance.hostname(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_kernels": provenance.cpu_kernels(),
    }


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status, error) of a run that raised: Ctrl-C, SLURM's SIGTERM and submitit's requeue exit leave it
    interrupted (resumable), anything else failed."""
    status = "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
    return status, f"{type(exc).__name__}: {exc}"


def build_record(
    cfg: DictConfig,
    *,
    run_id: str,
    status: str,
    error: str | None,
    history: list[dict[str, float]],
    timing: dict[str, float],
    device_names: list[str],
    wandb: dict[str, Any] | None,
    started_at: str,
    code: dict[str, Any],
    extra: dict[str, Any] | None = None,
    recipe: list[str] | None = None,
) -> dict[str, Any]:
    """The record as a plain mapping (validated by RunRecord: a wrong status or block raises InvalidRecordError)."""
    record = RunRecord(
        run_id=run_id,
        status=status,
        error=error,
        repro=OmegaConf.to_container(cfg.repro, resolve=True),
        seed=int(cfg.seed),
        recipe=recipe,
        config=OmegaConf.to_container(cfg, resolve=True),
        config_hash=config_hash(cfg),
        setting_hash=setting_hash(cfg),
        metrics={"final": final_metrics(history), "best": best_metrics(history)},
        history=history,
        timing=timing,
        hardware=hardware_info(cfg, device_names),
        code=code,
        versions=provenance.package_versions(),
        slurm=provenance.slurm_info(),
        wandb=wandb,
        extra=extra or {},
        started_at=started_at,
        finished_at=utc_now(),
    ).to_dict()
    return portable(record)
