"""Experiment trackers: W&B through Lightning's logger (offline unless a key is configured) and a CSV log.

A requeued SLURM job finds its W&B run id in the run folder and continues the same W&B run.
"""
from __future__ import annotations

import logging
import netrc
import os
import uuid
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
WANDB_ID_FILE = "wandb_id.txt"
_offline_notice_given = False


def wandb_api_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_wandb_mode(requested: str) -> str:
    """`auto` means online with an API key, else offline; the offline choice is announced once per process."""
    global _offline_notice_given
    if requested != "auto":
        return requested
    if wandb_api_key_configured():
        return "online"
    if not _offline_notice_given:
        log.warning("W&B: no API key configured, logging offline; upload later with `wandb sync <run folder>/wandb/offline-run-*`.")
        _offline_notice_given = True
    return "offline"


def _wandb_run_id(run_dir: Path) -> str:
    id_file = run_dir / WANDB_ID_FILE
    if id_file.exists():
        return id_file.read_text().strip()
    run_id = uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    return run_id


def build_loggers(cfg: DictConfig, run_dir: Path, *, is_global_zero: bool) -> list[Logger]:
    loggers: list[Logger] = []
    if cfg.logger.csv:
        # One CSV per attempt: a requeued job appends a new file instead of overwriting the earlier epochs.
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        loggers.append(CSVLogger(save_dir=run_dir, name="csv", version=f"attempt_{attempt}"))
    wandb_cfg = cfg.logger.wandb
    if wandb_cfg.enabled:
        mode = resolve_wandb_mode(wandb_cfg.mode) if is_global_zero else "disabled"
        if mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            loggers.append(
                WandbLogger(
                    project=wandb_cfg.project,
                    entity=wandb_cfg.entity,
                    group=wandb_cfg.group,
                    tags=list(wandb_cfg.tags) + [t for t in (cfg.repro.paper, cfg.repro.tier, cfg.repro.arm) if t],
                    name=run_dir.name,
                    save_dir=str(run_dir),
                    id=_wandb_run_id(run_dir),
                    resume="allow",
                    offline=mode == "offline",
                    config=OmegaConf.to_container(cfg, resolve=True),
                )
            )
    return loggers


def wandb_info(loggers: list[Logger]) -> dict[str, Any] | None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            return {
                "run_id": run.id,
                "project": run.project,
                "path": "/".join(p for p in (run.entity, run.project, run.id) if p),
                "mode": "offline" if run.settings.mode in ("offline", "dryrun") else run.settings.mode,
                "dir": str(Path(run.dir).parent),
            }
    return None


def metrics_location(loggers: list[Logger], run_dir: Path) -> str:
    """Where a person finds this run's per-epoch metrics: the CSV file, and the W&B run when there is one."""
    places = [str(Path(lg.log_dir) / "metrics.csv") for lg in loggers if isinstance(lg, CSVLogger)]
    info = wandb_info(loggers)
    if info:
        places.append(f"W&B {info['mode']} run {info['path']} ({info['dir']})")
    return "; ".join(places) or f"{run_dir} (record only: logger.csv is off)"


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run even when training failed, so a sweep's next job starts clean."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()
