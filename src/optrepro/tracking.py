"""Experiment trackers: W&B (offline unless a key is configured) and a CSV log, and how a run shows up in W&B.

A W&B run is named `<preset>/<arm>/s<seed>`, grouped by its claim setting (so a claim's arms sit side by side),
typed `train | smoke | debug`, and carries the resolved config plus the record's identity fields. A requeued
SLURM job finds its W&B run id in the run folder and continues the same W&B run.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from optrepro.config import NON_SEMANTIC_KEYS, config_hash, setting_hash
from optrepro.paths import CONFIG_DIR, reproduction_config_dirs
from optrepro.records.recipe import current_recipe
from optrepro.results.wandb_runs import IDENTITY_KEY

log = logging.getLogger(__name__)
WANDB_ID_FILE = "wandb_id.txt"
MAX_GROUP_LENGTH = 128  # W&B's limit on a group name
# Command-line overrides that choose the arm, the seed or how a run is executed: not part of a claim's setting.
NOT_SETTING_KEYS = ("repro", "name", "seed", "optimizer", "hardware", "limits", "debug", "local", *NON_SEMANTIC_KEYS)
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
        log.warning("W&B: no API key configured, logging offline; the end-of-run summary says how to upload.")
        _offline_notice_given = True
    return "offline"


def _wandb_run_id(run_dir: Path) -> str:
    id_file = run_dir / WANDB_ID_FILE
    if id_file.exists():
        return id_file.read_text().strip()
    run_id = uuid.uuid4().hex[:8]
    id_file.write_text(run_id)
    return run_id


# ---- how a run shows up in W&B ------------------------------------------------------------------------
def hydra_context() -> tuple[dict[str, Any], list[str]]:
    """(config group choices, command-line overrides) of the running Hydra app; empty outside one."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}, []
    hydra_cfg = HydraConfig.get()
    return dict(hydra_cfg.runtime.choices), list(hydra_cfg.overrides.task)


def job_type(cfg: DictConfig, choices: Mapping[str, Any]) -> str:
    """`smoke` (debug=smoke), `debug` (any other debug preset or a hand-set limit), else `train`."""
    if choices.get("debug") == "smoke":
        return "smoke"
    if choices.get("debug") or any(value is not None for value in cfg.limits.values()):
        return "debug"
    return "train"


def run_name(cfg: DictConfig, kind: str) -> str:
    """`<preset>/<arm>/s<seed>`, e.g. `sam_cifar/sam/s0`; smoke and debug runs end in `/smoke` or `/debug`."""
    preset = cfg.repro.name or cfg.name
    arm = cfg.repro.arm or cfg.optimizer.get("name") or "run"
    name = f"{preset}/{arm}/s{cfg.seed}"
    return name if kind == "train" else f"{name}/{kind}"


def preset_setting(preset: str | None) -> str | None:
    """The shared setting a repro preset is built on (`- /setting/<name>` in its defaults), if it names one."""
    if not preset:
        return None
    for config_dir in (CONFIG_DIR, *reproduction_config_dirs()):
        path = config_dir / "repro" / f"{preset}.yaml"
        if path.exists():
            defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
            for entry in defaults:
                if isinstance(entry, str) and entry.lstrip("/").startswith("setting/"):
                    return entry.rsplit("/", 1)[-1]
            return None
    return None


def setting_overrides(task_overrides: Sequence[str]) -> list[str]:
    """Command-line overrides that change the setting (e.g. a claim's `dataset.augment.cutout=16`), sorted;
    the arm (`+repro=`, `optimizer.*`), the seed, hardware, debug limits and display keys are left out."""
    kept = []
    for override in task_overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if not any(key == k or key.startswith((f"{k}.", f"{k}/")) for k in NOT_SETTING_KEYS):
            kept.append(override.lstrip("+"))
    return sorted(kept)


def claim_setting(cfg: DictConfig, task_overrides: Sequence[str]) -> str:
    """What a claim's arms share: the preset's shared setting (the `setting` config it is built on, e.g.
    `sam_family_fmnist_cpu`, whatever paper the arm belongs to), else `<paper>_<dataset>_<tier>`, else the run
    name; plus the setting overrides of the command line in brackets."""
    paper = cfg.repro.paper
    base = preset_setting(cfg.repro.name) or (
        f"{paper}_{cfg.dataset.name}_{cfg.repro.tier}" if paper else str(cfg.name)
    )
    extras = setting_overrides(task_overrides)
    group = f"{base}[{','.join(extras)}]" if extras else base
    if len(group) > MAX_GROUP_LENGTH:
        group = f"{base}[{hashlib.sha256(','.join(extras).encode()).hexdigest()[:8]}]"
    return group


def run_group(cfg: DictConfig, kind: str, task_overrides: Sequence[str]) -> str:
    """`logger.wandb.group` when set; else the claim setting, under `smoke/` or `debug/` for those runs."""
    if cfg.logger.wandb.get("group"):
        return str(cfg.logger.wandb.group)
    group = claim_setting(cfg, task_overrides)
    return group if kind == "train" else f"{kind}/{group}"


def run_tags(cfg: DictConfig, kind: str) -> list[str]:
    """Configured tags, then `paper:<p>`, `tier:<t>`, `arm:<a>` (prefixed: paper `sam` and arm `sam` stay apart in
    W&B's filters) and, for smoke/debug runs, the job type; each once."""
    repro = cfg.repro
    candidates = [
        *cfg.logger.wandb.tags,
        *(f"{key}:{repro[key]}" for key in ("paper", "tier", "arm") if repro[key]),
        kind if kind != "train" else None,
    ]
    return list(dict.fromkeys(str(tag) for tag in candidates if tag))


def record_identity(cfg: DictConfig, run_dir: Path, code: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """The fields that tie a W&B run to its record.json (stored under `record_identity` in the run config)."""
    code = code or {}
    try:
        folder = Path(run_dir).resolve().relative_to(Path(cfg.paths.runs_dir).resolve()).as_posix()
    except ValueError:
        folder = Path(run_dir).name
    return {
        "run_id": Path(run_dir).name,
        "run_folder": folder,  # relative to paths.runs_dir
        "config_hash": config_hash(cfg),
        "setting_hash": setting_hash(cfg),
        "recipe": current_recipe(),
        "repro": OmegaConf.to_container(cfg.repro, resolve=True),
        "job_type": kind,
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "source_hash": code.get("source_hash"),
    }


def wandb_init_kwargs(
    cfg: DictConfig,
    run_dir: Path,
    *,
    mode: str,
    code: Mapping[str, Any] | None = None,
    choices: Mapping[str, Any] | None = None,
    task_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything `wandb.init` receives for this run (a function of the config, so it is testable)."""
    kind = job_type(cfg, choices or {})
    wandb_cfg = cfg.logger.wandb
    return {
        "project": wandb_cfg.project,
        "entity": wandb_cfg.entity,
        "name": run_name(cfg, kind),
        "group": run_group(cfg, kind, task_overrides),
        "job_type": kind,
        "tags": run_tags(cfg, kind),
        "config": {
            **OmegaConf.to_container(cfg, resolve=True),
            IDENTITY_KEY: record_identity(cfg, run_dir, code, kind),
        },
        "dir": str(run_dir),
        "id": _wandb_run_id(run_dir),
        "resume": "allow",
        "mode": mode,
    }


def _wandb_logger(init_kwargs: dict[str, Any]) -> WandbLogger:
    """Starts the W&B run here rather than inside Lightning, whose WandbLogger passes wandb.init the deprecated
    `anonymous` argument (a warning in every run)."""
    import wandb

    run = wandb.init(**init_kwargs)
    run.define_metric("trainer/global_step")  # what Lightning's logger sets up for a run it starts itself
    run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    return WandbLogger(experiment=run, save_dir=init_kwargs["dir"], project=init_kwargs["project"])


def build_loggers(
    cfg: DictConfig, run_dir: Path, *, is_global_zero: bool, code: Mapping[str, Any] | None = None
) -> list[Logger]:
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
            choices, task_overrides = hydra_context()
            loggers.append(
                _wandb_logger(
                    wandb_init_kwargs(
                        cfg, run_dir, mode=mode, code=code, choices=choices, task_overrides=task_overrides
                    )
                )
            )
    return loggers


def wandb_info(loggers: list[Logger]) -> dict[str, Any] | None:
    """The record's `wandb` block; `dir` (the folder `wandb sync` uploads) is relative to the run folder."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            run_folder = Path(run.dir).parent
            save_dir = Path(logger.save_dir or ".").resolve()
            try:
                folder = run_folder.resolve().relative_to(save_dir).as_posix()
            except ValueError:
                folder = run_folder.name
            return {
                "run_id": run.id,
                "project": run.project,
                "path": "/".join(p for p in (run.entity, run.project, run.id) if p),
                "mode": "offline" if run.settings.mode in ("offline", "dryrun") else run.settings.mode,
                "dir": folder,
                "name": run.name,
                "group": run.group,
                "url": run.url if run.settings.mode == "online" else None,
            }
    return None


def metrics_files(loggers: list[Logger]) -> list[Path]:
    """The per-epoch metrics files of this run (the CSV log of this attempt)."""
    return [Path(lg.log_dir) / "metrics.csv" for lg in loggers if isinstance(lg, CSVLogger)]


def finish_wandb(loggers: list[Logger]) -> None:
    """Close the W&B run even when training failed, so a sweep's next job starts clean. A failure to close (its
    service already gone) is logged, never raised: it must not replace how the run itself ended."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            try:
                wandb.finish()
            except Exception as exc:  # noqa: BLE001 - the run's own outcome is already recorded
                log.warning(
                    "W&B: closing the run failed (%s: %s); its offline folder keeps what was logged",
                    type(exc).__name__,
                    exc,
                )
