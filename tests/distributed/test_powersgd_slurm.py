"""PowerSGD's smoke preset through the local SLURM cluster: one job, 2 tasks (the gloo workers), one record."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from optrepro.paths import REPO_ROOT

pytestmark = pytest.mark.slurm


def test_the_smoke_preset_runs_as_a_two_task_slurm_job_and_records_the_bytes(slurm_env, tmp_path):
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "run.py",
        "-m",
        "hydra/launcher=slurm",
        "+repro=powersgd_digits_smoke_rank2",
        "cluster.cpus_per_task=1",
        "cluster.timeout_min=10",
        "logger=csv",
        f"paths.runs_dir={runs}",
    ]
    done = subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=slurm_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = list(runs.rglob("record.json"))
    record = json.loads(path.read_text())
    assert record["status"] == "finished", record["error"]
    assert record["slurm"]["job_id"] and record["hardware"]["world_size"] == 2
    first, last = record["history"]
    assert last["comm/compression_ratio"] == pytest.approx(last["comm/expected_ratio"], rel=1e-12)
    assert first["comm/bytes_per_step"] > last["comm/bytes_per_step"]  # 3 dense steps before start_iter
