"""A two-node SLURM cluster on this machine (slurm/local-cluster.sh) shared by the tests marked `slurm`.

pyproject's addopts deselect them; `pytest -m slurm` runs them. Without the SLURM binaries (or
without root) they skip, unless `-m slurm` asks for them:
then the fixture starts the cluster anyway, which installs the packages or fails saying why.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from optrepro.paths import REPO_ROOT

CLUSTER_SCRIPT = REPO_ROOT / "slurm" / "local-cluster.sh"
SLURM_BINARIES = ("slurmctld", "slurmd", "sbatch", "munged")
# Daemons live in /usr/sbin, which a non-login shell may not have on PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _slurm_requested(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr") or ""
    return "slurm" in markexpr and "not slurm" not in markexpr


def _cluster(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER_SCRIPT), *command], check=False, capture_output=True, text=True, timeout=600)


def _cluster_env() -> dict[str, str]:
    """os.environ plus what `local-cluster.sh env` exports (SLURM_CONF, PATH with the sacct stand-in, MASTER_ADDR)."""
    exports = _cluster("env").stdout.splitlines()
    pairs = (line.removeprefix("export ").split("=", 1) for line in exports)
    return {**os.environ, **{name: os.path.expandvars(value) for name, value in pairs}}  # $PATH as the shell would


@pytest.fixture(scope="session")
def slurm_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Environment for subprocesses that talk to the local cluster; starts it with two nodes (the multi-node
    test needs them, the others run on either), stops it at the end unless it was already running before
    the tests (then it is used as it is)."""
    if not _slurm_requested(request.config):
        missing = [name for name in SLURM_BINARIES if shutil.which(name, path=SEARCH_PATH) is None]
        if missing:
            pytest.skip(
                f"SLURM binaries missing ({', '.join(missing)}); run as root: pytest -m slurm "
                "(installs slurmctld slurmd slurm-client munge with apt-get)"
            )
        if os.geteuid() != 0:
            pytest.skip("a local SLURM cluster needs root (slurmd); run as root: pytest -m slurm")
    was_running = _cluster("status").returncode == 0
    started = _cluster("start") if was_running else _cluster("start", "--nodes", "2")
    if started.returncode != 0:
        pytest.fail(f"slurm/local-cluster.sh start failed:\n{started.stderr}", pytrace=False)
    yield _cluster_env()
    if not was_running:
        _cluster("stop")
