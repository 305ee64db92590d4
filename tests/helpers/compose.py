"""Compose the real config tree as run.py does, for tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from optrepro.paths import CONFIG_DIR


def compose_config(overrides: list[str], tmp_path: Path | None = None) -> DictConfig:
    """The config run.py would get for these overrides, with the hydra node set so ${hydra:...} resolves."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
        if tmp_path is not None:
            cfg.paths.runs_dir = str(tmp_path / "runs")
    return cfg


def compose_optimizer(name: str, *overrides: str) -> DictConfig:
    """The `optimizer` group's option `name` (with overrides) as build_optimizer receives it, open for edits."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=f"optimizer/{name}", overrides=list(overrides)).optimizer
    OmegaConf.set_struct(cfg, False)
    return cfg
