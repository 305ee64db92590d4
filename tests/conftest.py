"""Shared fixtures: compose the real config tree (as run.py does) with tmp folders for runs and a fast setting."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from optrepro.paths import CONFIG_DIR, REPO_ROOT

os.environ.setdefault("WANDB_SILENT", "true")


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


@pytest.fixture
def make_cfg(tmp_path):
    return lambda overrides=(): compose_config(list(overrides), tmp_path)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never reach W&B servers: no key, offline mode."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPTREPRO_DATA", str(REPO_ROOT / "data"))
