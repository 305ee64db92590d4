"""Collision-free run folders: SLURM ids where present, else time plus a random suffix, made with exist_ok=False.

Under SLURM the folder is named by the job id alone, so every task of a multi-task job and a requeued job
find the same folder (the requeued job resumes from its checkpoint). Locally, DDP worker processes receive
the folder of rank 0 through OPTREPRO_RUN_DIR.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

RUN_DIR_ENV = "OPTREPRO_RUN_DIR"


def slurm_folder_name() -> str | None:
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}_{env['SLURM_JOB_ID']}"
    return f"{env['SLURM_JOB_ID']}_0_{env['SLURM_JOB_ID']}"


def make_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create this run's folder (or return the one rank 0 or an earlier SLURM attempt made)."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited:
        return Path(inherited)
    now = datetime.now(timezone.utc)
    parent = Path(runs_dir) / now.strftime("%Y-%m-%d") / name
    slurm_name = slurm_folder_name()
    if slurm_name is not None:
        existing = sorted(Path(runs_dir).glob(f"*/{name}/{slurm_name}"))
        if existing:
            return existing[-1]
        run_dir = parent / slurm_name
        run_dir.mkdir(parents=True, exist_ok=True)  # all tasks of one SLURM job share it
        return run_dir
    run_dir = parent / f"local_0_{now.strftime('%H%M%S')}_{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir
