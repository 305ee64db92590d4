"""Bad input as a user meets it: the config check's error, and `python run.py` refusing in one line before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.compose import compose_config
from optrepro.config_schema import validate_config
from optrepro.errors import ConfigError, OptreproError
from optrepro.paths import REPO_ROOT


def config_check_error(overrides: list[str]) -> ConfigError:
    """The error the config check raises for the composed `overrides` (the test fails when it raises none)."""
    with pytest.raises(ConfigError) as caught:
        validate_config(compose_config(overrides))
    return caught.value


def rejected_run(overrides: list[str], tmp_path: Path, *, timeout: int = 300, env: dict | None = None) -> str:
    """The stderr of `python run.py <overrides>`, after asserting that it exited 2 and made no run folder."""
    runs = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "run.py", *overrides, f"paths.runs_dir={runs}", f"hydra.run.dir={tmp_path}/h"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert not runs.exists()  # stopped by the config check, before any work
    return done.stderr


def stopped_before_any_work(overrides: list[str], tmp_path: Path) -> str:
    """The line run.py prints for `overrides`, after asserting that the run stopped with no run folder (in process:
    faster than rejected_run, for a table of bad knobs)."""
    from optrepro.train import run

    cfg = compose_config(overrides, tmp_path)
    with pytest.raises(OptreproError) as caught:
        run(cfg)  # the config check first: a bad value let through would train and make the run folder
    assert not (tmp_path / "runs").exists()
    return f"optrepro: error: {caught.value}"
