"""Where, with what code and on what hardware a run happened: the facts a reader needs to trust a number."""
from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from importlib import metadata
from typing import Any

from optrepro import __version__
from optrepro.paths import REPO_ROOT

PACKAGES = ("torch", "lightning", "hydra-core", "omegaconf", "numpy", "timm", "torchvision", "wandb", "datasets")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# What decides the numbers a run produces: training code, a paper's own code (its steps, losses, callbacks) and every
# config. The claims/results tooling, docs and tests are left out, so committing a README does not make earlier runs
# a different code version.
SOURCE_GLOBS = ("src/optrepro/**/*.py", "configs/**/*.yaml", "reproductions/*/configs/**/*.yaml",
                "reproductions/**/*.py")
SOURCE_EXCLUDED = ("src/optrepro/claims/", "src/optrepro/results/", "src/optrepro/regression/", "src/optrepro/cli.py",
                   "src/optrepro/__main__.py")


def source_hash() -> str:
    """Content hash of the files that decide what a run computes, as they are on disk (uncommitted edits too)."""
    digest = hashlib.sha256()
    for pattern in SOURCE_GLOBS:
        for path in sorted(REPO_ROOT.glob(pattern)):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative.startswith(SOURCE_EXCLUDED) or "/tests/" in relative:
                continue
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_info() -> dict[str, Any]:
    """Call at the start of a run: the files may change on disk while it trains."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "source_hash": source_hash(),
        "package_version": __version__,
    }


def package_versions() -> dict[str, str | None]:
    """Installed versions, plus torch's build (`2.14.1+cu130`) and CUDA: PyPI's version alone does not name the build."""
    import torch

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["torch_build"] = torch.__version__
    versions["torch_cuda"] = torch.version.cuda
    return versions


def slurm_info() -> dict[str, Any] | None:
    """SLURM's ids for this job, or None outside SLURM."""
    if "SLURM_JOB_ID" not in os.environ:
        return None
    env = os.environ.get
    return {
        "job_id": env("SLURM_JOB_ID"),
        "array_job_id": env("SLURM_ARRAY_JOB_ID"),
        "array_task_id": env("SLURM_ARRAY_TASK_ID"),
        "node_list": env("SLURM_JOB_NODELIST"),
        "restart_count": int(env("SLURM_RESTART_COUNT", "0")),
    }


def device_names(accelerator: str, devices: int) -> list[str]:
    import torch

    if accelerator == "gpu" and torch.cuda.is_available():
        return [torch.cuda.get_device_name(i) for i in range(min(devices, torch.cuda.device_count()))]
    return [platform.processor() or platform.machine()] * devices


def hostname() -> str:
    return socket.gethostname()
