"""run.py on the local SLURM cluster: array sweeps through the Hydra launcher, a 2-task DDP job through srun,
preemption with requeue, relaunching a sweep after a killed element, and scheduler errors shown to the user."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optrepro.paths import REPO_ROOT

pytestmark = pytest.mark.slurm

# No eval limit: with one, each DDP rank would evaluate the first batches of its own shard, not the same samples.
TINY = [
    "dataset=digits",
    "model=mlp",
    "logger=csv",
    "train.batch_size=64",
    "limits.max_epochs=1",
    "limits.train_batches=5",
]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def records(runs_dir: Path) -> list[dict]:
    return [read_json(p) for p in sorted(runs_dir.glob("*/*/*/record.json"))]


def run_py(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def sweep(runs_dir: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "hydra/launcher=slurm",
        "hardware=cpu",
        "cluster.cpus_per_task=1",
        "cluster.timeout_min=20",
        f"paths.runs_dir={runs_dir}",
        *TINY,
        *extra,
    ]


def test_a_four_element_array_sweep_leaves_one_record_per_element_in_its_own_folder(slurm_env, tmp_path):
    done = run_py(sweep(tmp_path / "runs", "seed=0,1,2,3"), slurm_env)
    assert done.returncode == 0, done.stderr[-3000:]
    found = records(tmp_path / "runs")
    assert sorted(r["seed"] for r in found) == [0, 1, 2, 3]
    assert all(r["status"] == "finished" for r in found)
    array_ids = {r["slurm"]["array_job_id"] for r in found}
    assert len(array_ids) == 1, "one job array, not four jobs"
    assert sorted(r["slurm"]["array_task_id"] for r in found) == ["0", "1", "2", "3"]
    assert len({r["run_id"] for r in found}) == 4


def test_relaunching_a_sweep_after_a_killed_element_runs_only_that_element(slurm_env, tmp_path):
    runs = tmp_path / "runs"
    long_enough = ["seed=0,1,2", "limits.train_batches=40", "limits.max_epochs=150"]  # ~15 s of training each
    first = subprocess.Popen(
        [sys.executable, "run.py", *sweep(runs, *long_enough)],
        cwd=REPO_ROOT,
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    killed = None
    while killed is None and time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T"], env=slurm_env, capture_output=True, text=True).stdout
        running = sorted(line.split()[0] for line in queue.splitlines() if line.endswith("RUNNING") and "_" in line)
        training = [element for element in running if list(runs.glob(f"*/*/{element}_*"))]  # its run has begun
        if training:
            killed = training[0]
            # SIGKILL to every step, the batch script included, mid-training: nothing can catch it or finish first
            # (submitit ignores scancel's default SIGTERM as a preemption warning).
            subprocess.run(["scancel", "--full", "--signal=KILL", killed], env=slurm_env, check=True)
        time.sleep(0.5)
    first.communicate(timeout=600)
    assert killed is not None, "no array element ever started training"
    killed_dir = next(runs.glob(f"*/*/{killed}_*"))
    assert not (killed_dir / "record.json").exists() or read_json(killed_dir / "record.json")["status"] != "finished"
    finished = [r for r in records(runs) if r["status"] == "finished"]
    assert len(finished) == 2, "the other elements finish although one was killed"

    again = run_py(sweep(runs, *long_enough), slurm_env)
    assert again.returncode == 0, again.stderr[-3000:]
    finished_now = [r for r in records(runs) if r["status"] == "finished"]
    assert sorted(r["seed"] for r in finished_now) == [0, 1, 2]
    new_runs = {r["run_id"] for r in finished_now} - {r["run_id"] for r in finished}
    assert len(new_runs) == 1, "only the killed element ran again"


def test_two_task_ddp_through_srun_equals_the_single_process_run(slurm_env, tmp_path):
    single = run_py([*TINY, "hardware=cpu", f"paths.runs_dir={tmp_path / 'single'}"], slurm_env)
    assert single.returncode == 0, single.stderr[-3000:]
    command = f"srun {sys.executable} run.py hardware=ddp_cpu {' '.join(TINY)} paths.runs_dir={tmp_path / 'ddp'}"
    job = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--nodes=1",
            "--ntasks-per-node=2",
            "--cpus-per-task=1",
            f"--chdir={REPO_ROOT}",
            f"--output={tmp_path / 'ddp.out'}",
            "--wrap",
            command,
        ],
        env=slurm_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert job.returncode == 0, (tmp_path / "ddp.out").read_text()[-3000:]
    (ddp,), (one,) = records(tmp_path / "ddp"), records(tmp_path / "single")
    assert ddp["hardware"]["world_size"] == 2 and ddp["slurm"]["job_id"]
    for metric in ("train/loss", "test/loss", "test/acc"):
        assert ddp["metrics"]["final"][metric] == pytest.approx(one["metrics"]["final"][metric], rel=1e-5, abs=1e-6)


def test_a_preempted_element_is_requeued_and_ends_identical_to_a_control_run(slurm_env, tmp_path):
    common = [
        "dataset=digits",
        "model=small_cnn",
        "model.width=8",
        "logger=csv",
        "train.epochs=30",
        "train.batch_size=32",
        "optimizer=sam",
    ]
    control = run_py([*common, f"paths.runs_dir={tmp_path / 'control'}"], slurm_env)
    assert control.returncode == 0, control.stderr[-3000:]
    command = f"srun {sys.executable} run.py {' '.join(common)} paths.runs_dir={tmp_path / 'slurm'}"
    submitted = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--requeue",
            "--cpus-per-task=1",
            f"--chdir={REPO_ROOT}",
            f"--output={tmp_path / 'job.out'}",
            "--open-mode=append",
            "--wrap",
            command,
        ],
        env=slurm_env,
        capture_output=True,
        text=True,
        check=True,
    )
    job_id = submitted.stdout.strip()
    deadline = time.monotonic() + 600
    while not list((tmp_path / "slurm").glob("*/*/*/checkpoints/last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR1", job_id], env=slurm_env, check=True)  # to the job steps: the run
    while time.monotonic() < deadline:  # the job requeues itself, restarts and finishes
        found = records(tmp_path / "slurm")
        if found and found[0]["status"] == "finished":
            break
        time.sleep(2)
    (resumed,), (reference,) = records(tmp_path / "slurm"), records(tmp_path / "control")
    log = (tmp_path / "job.out").read_text()
    assert resumed["status"] == "finished", log[-3000:]
    assert resumed["slurm"]["restart_count"] >= 1 and "requeued SLURM job" in log

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    assert strip(resumed["history"]) == strip(reference["history"])


def test_a_sweep_with_jobs_preempted_by_usr2_and_usr1_waits_for_them_and_ends_identical(slurm_env, tmp_path):
    """The sweep a user launches: one element preempted by submitit's USR2, the other by sweep.sbatch's USR1, both
    after their first epoch checkpoint. The sweep command keeps waiting while SLURM holds the requeued jobs, exits 0
    once they finish, and each resumed record equals an uninterrupted run row for row (the test split evaluated every
    4th epoch, so the checkpoint falls between evaluations)."""
    common = [
        "dataset=digits",
        "model=small_cnn",
        "model.width=8",
        "logger=csv",
        "train.epochs=24",
        "train.eval_every=4",
        "train.batch_size=32",
        "optimizer=sam",
    ]
    controls = {}
    for seed in (0, 1):
        done = run_py([*common, f"seed={seed}", f"paths.runs_dir={tmp_path / 'control'}"], slurm_env)
        assert done.returncode == 0, done.stderr[-3000:]
    for record in records(tmp_path / "control"):
        controls[record["seed"]] = record
    runs = tmp_path / "runs"
    sweep_cmd = [
        sys.executable,
        "run.py",
        "-m",
        "hydra/launcher=slurm",
        "hardware=cpu",
        "cluster.cpus_per_task=1",
        "cluster.timeout_min=20",
        f"paths.runs_dir={runs}",
        *common,
        "seed=0,1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]
    launched = subprocess.Popen(
        sweep_cmd, cwd=REPO_ROOT, env=slurm_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 300
    while len(list(runs.glob("*/*/*/checkpoints/last.ckpt"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    jobs = sorted(path.name for path in (tmp_path / "sweep" / ".submitit").glob("*_[01]"))
    assert len(jobs) == 2, jobs
    for job, signal_name in zip(jobs, ("USR2", "USR1")):
        subprocess.run(["scancel", f"--signal={signal_name}", job], env=slurm_env, check=True)
    output, _ = launched.communicate(timeout=900)
    assert launched.returncode == 0, output[-3000:]
    logs = "".join(path.read_text() for path in (tmp_path / "sweep" / ".submitit").rglob("*_log.out"))
    for signal_name in ("SIGUSR2", "SIGUSR1"):
        assert f"preempted by {signal_name}: requeuing SLURM job" in logs, logs[-3000:]
    assert "SLURM holds a requeued job about 2 minutes in PD (BeginTime)" in logs
    assert logs.count("resuming from a checkpoint that holds epochs 0..") == 2

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]

    resumed = {record["seed"]: record for record in records(runs)}
    for seed in (0, 1):
        assert resumed[seed]["status"] == "finished"
        assert [a["attempt"] for a in resumed[seed]["timing"]["attempts"]] == [0, 1]
        assert strip(resumed[seed]["history"]) == strip(controls[seed]["history"])


def test_an_unknown_partition_fails_with_the_schedulers_message_and_no_records(slurm_env, tmp_path):
    done = run_py(sweep(tmp_path / "runs", "seed=0,1", "cluster.partition=nosuch"), slurm_env, timeout=300)
    assert done.returncode != 0
    assert "invalid partition" in (done.stdout + done.stderr).lower()
    assert not list((tmp_path / "runs").rglob("record.json"))
