"""Pytest fixtures shared by tests/claims and tests/results (imported by their conftest.py)."""

from __future__ import annotations

import pytest

from claimkit import RecordFactory, write_config_tree


@pytest.fixture(scope="session")
def config_dir(tmp_path_factory):
    """One tiny config tree per session: Hydra compose takes ~0.3 s, so configs are composed once."""
    return write_config_tree(tmp_path_factory.mktemp("configs"))


@pytest.fixture
def records(config_dir, tmp_path):
    return RecordFactory(config_dir, tmp_path / "records")
