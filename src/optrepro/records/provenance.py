"""Where, with what code and on what hardware a run happened: the facts a reader needs to trust a number."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path
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


# What decides the numbers a run produces: training code, the configs, and the code of the papers the run uses (its
# own paper's folder and any paper module its config names: a step, a loss, a callback). Other papers' folders are
# left out, so adding or editing one paper does not make every other paper's runs an older version; so are the
# claims/results tooling, docs and tests, so committing a README does not either.
SHARED_GLOBS = ("src/optrepro/**/*.py", "configs/**/*.yaml")
PAPER_GLOBS = ("configs/**/*.yaml", "**/*.py")  # inside reproductions/<paper>/
SOURCE_EXCLUDED = (
    "src/optrepro/claims/",
    "src/optrepro/results/",
    "src/optrepro/regression/",
    "src/optrepro/cli.py",
    "src/optrepro/__main__.py",
)
PAPER_MODULE = re.compile(r"reproductions[./](\w+)")


def papers_used(cfg: Any) -> tuple[str, ...] | None:
    """The papers whose folders decide this run: its own (`repro.paper`) and every `reproductions.<paper>` its
    resolved config names; None (every paper) without a config."""
    if cfg is None:
        return None
    from omegaconf import OmegaConf

    text = str(OmegaConf.to_container(cfg, resolve=False))  # a _target_ is written out, never interpolated
    own = (cfg.get("repro") or {}).get("paper")
    return tuple(sorted({*PAPER_MODULE.findall(text), *([own] if own else [])}))


def source_hash(papers: tuple[str, ...] | None = None) -> str:
    """Content hash of the files that decide what a run computes, as they are on disk (uncommitted edits too):
    the shared code and configs plus the folders of `papers` (every paper's when None)."""
    folders = (
        sorted(p.name for p in (REPO_ROOT / "reproductions").iterdir() if p.is_dir()) if papers is None else papers
    )
    patterns = [*SHARED_GLOBS, *(f"reproductions/{paper}/{glob}" for paper in folders for glob in PAPER_GLOBS)]
    digest = hashlib.sha256()
    for path in sorted({p for pattern in patterns for p in REPO_ROOT.glob(pattern) if p.is_file()}):
        relative = path.relative_to(REPO_ROOT).as_posix()
        if relative.startswith(SOURCE_EXCLUDED) or "/tests/" in relative:
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_info(cfg: Any = None) -> dict[str, Any]:
    """Call at the start of a run: the files may change on disk while it trains. With the run's config, the code
    version covers the shared code and the papers the run uses (papers_used)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "source_hash": source_hash(papers_used(cfg)),
        "package_version": __version__,
    }


# CPU features that select other BLAS / oneDNN kernels than the ATen capability alone says.
KERNEL_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_tile", "avx512_fp16")


def cpu_kernels() -> str:
    """This machine's CPU kernel set, e.g. `x86_64-avx512-vnni-bf16-amx-fp16`: ATen's dispatch level plus the
    features that make MKL and oneDNN pick other kernels. A CPU run is deterministic for one kernel set: the same
    code and packages give the same bits there, and other summation orders elsewhere."""
    import torch

    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split())
    except (OSError, IndexError):
        flags = set()
    extra = [flag.removeprefix("avx512_").removesuffix("_tile") for flag in KERNEL_FLAGS if flag in flags]
    return "-".join([platform.machine(), torch.backends.cpu.get_cpu_capability().lower(), *extra])


def package_versions() -> dict[str, str | None]:
    """Installed versions, plus torch's build (`2.14.1+cu130`) and CUDA: PyPI's version alone does not name the
    build."""
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
