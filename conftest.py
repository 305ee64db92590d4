"""Shared fixtures: compose the real config tree (as run.py does) with tmp folders for runs and a fast setting."""

from __future__ import annotations

import os

import pytest
from helpers.compose import compose_config

from optrepro.paths import REPO_ROOT

os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path):
    return lambda overrides=(): compose_config(list(overrides), tmp_path)


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """Tests never reach W&B servers: no key, offline mode."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPTREPRO_DATA", str(REPO_ROOT / "data"))


def pytest_configure(config):
    """One torch thread per test process: a second process on 2 cores (a DDP rank, a run launched by a test, a
    parallel job) otherwise makes every step wait on spinning OpenMP threads, 10x slower."""
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
