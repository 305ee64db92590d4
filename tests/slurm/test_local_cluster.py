"""The SLURM path end to end on the local cluster: plain sbatch arrays and Hydra sweeps through the
real configs/hydra/launcher/slurm.yaml (with the real cluster/ and hardware/ config groups)."""

import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optrepro.paths import REPO_ROOT

pytestmark = pytest.mark.slurm

# A stand-in for run.py: records, in its own Hydra output folder, which array element ran it.
APP = """
import json, os
import hydra
from hydra.core.hydra_config import HydraConfig

@hydra.main(version_base="1.3", config_path=".", config_name="app")
def main(cfg):
    keys = ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_NTASKS", "SLURM_JOB_PARTITION")
    seen = {key: os.environ.get(key) for key in keys}
    seen["seed"] = cfg.seed
    out_dir = HydraConfig.get().runtime.output_dir
    with open(os.path.join(out_dir, "job.json"), "w") as f:
        json.dump(seen, f)

if __name__ == "__main__":
    main()
"""

APP_CONFIG = f"""
defaults:
  - cluster: default
  - hardware: cpu
  - _self_

seed: 0
cluster:
  cpus_per_task: 1     # the local node has as few as 2 CPUs

hydra:
  searchpath:
    - file://{REPO_ROOT}/configs
  sweep:
    dir: multirun
    subdir: ${{hydra.job.num}}
"""


# A stand-in for run.py under slurm/sweep.sbatch: records the arguments it got, per array element.
FAKE_RUN = """
import json, os, sys
os.makedirs("out", exist_ok=True)
with open(f"out/{os.environ['SLURM_ARRAY_TASK_ID']}.json", "w") as f:
    json.dump(sys.argv[1:], f)
"""


@pytest.fixture
def hydra_app(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "app.yaml").write_text(APP_CONFIG)
    return tmp_path


def launch(app_dir: Path, env: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "app.py", "-m", "hydra/launcher=slurm", *overrides]
    return subprocess.run(command, check=False, cwd=app_dir, env=env, capture_output=True, text=True, timeout=300)


def test_sbatch_array_writes_one_output_per_element(slurm_env, tmp_path):
    subprocess.run(
        [
            "sbatch",
            "--wait",
            "--array=0-3",
            f"--output={tmp_path}/out_%a.txt",
            "--wrap",
            'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID"',
        ],
        env=slurm_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    lines = {path.name: path.read_text().split() for path in tmp_path.glob("out_*.txt")}
    assert sorted(lines) == [f"out_{task}.txt" for task in range(4)]
    assert {name: task for name, (_, task) in lines.items()} == {f"out_{t}.txt": str(t) for t in range(4)}
    assert len({array_job for array_job, _ in lines.values()}) == 1


def test_sweep_sbatch_runs_each_overrides_line_as_one_element(slurm_env, tmp_path):
    """The command make_overrides.py prints is submitted as printed (a CPU run asks for no GPU)."""
    (tmp_path / "run.py").write_text(FAKE_RUN)
    made = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "slurm" / "make_overrides.py"),
            "seed=0,1",
            "optimizer=sgd,sam",
            "name='a b'",
            "hardware=cpu",
            "cluster.cpus_per_task=1",
            "--output",
            "sweep.txt",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    sbatch, *flags = shlex.split(made.stdout.replace("slurm/sweep.sbatch", str(REPO_ROOT / "slurm" / "sweep.sbatch")))
    assert not any(flag.startswith("--gpus") for flag in flags)
    env = {**slurm_env, "PATH": f"{Path(sys.executable).parent}:{slurm_env['PATH']}"}  # `python` = this one
    submitted = subprocess.run(
        [sbatch, "--wait", *flags], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert submitted.returncode == 0, submitted.stderr

    got = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "out").glob("*.json")}
    common = ["name='a b'", "hardware=cpu", "cluster.cpus_per_task=1"]
    assert got == {
        "0": ["seed=0", "optimizer=sgd", *common],
        "1": ["seed=0", "optimizer=sam", *common],
        "2": ["seed=1", "optimizer=sgd", *common],
        "3": ["seed=1", "optimizer=sam", *common],
    }
    assert len(list(tmp_path.glob("sweep_*_*.out"))) == 4


def test_hydra_sweep_runs_as_one_job_array(slurm_env, hydra_app):
    result = launch(hydra_app, slurm_env, "seed=0,1,2,3")
    assert result.returncode == 0, result.stderr

    job_files = sorted((hydra_app / "multirun").glob("*/job.json"))
    assert [path.parent.name for path in job_files] == ["0", "1", "2", "3"]
    jobs = [json.loads(path.read_text()) for path in job_files]
    assert len({job["SLURM_ARRAY_JOB_ID"] for job in jobs}) == 1
    assert sorted(job["SLURM_ARRAY_TASK_ID"] for job in jobs) == ["0", "1", "2", "3"]
    assert sorted(job["seed"] for job in jobs) == [0, 1, 2, 3]
    # hardware=cpu has one device: one task per array element, on the default partition.
    assert {(job["SLURM_NTASKS"], job["SLURM_JOB_PARTITION"]) for job in jobs} == {("1", "debug")}


def test_site_settings_reach_sbatch(slurm_env, hydra_app):
    result = launch(
        hydra_app,
        slurm_env,
        "seed=0,1",
        "cluster.partition=debug",
        "cluster.timeout_min=7",
        "cluster.array_parallelism=1",
        "cluster.signal_delay_s=45",
        "+cluster.additional_parameters.comment=optrepro-test",
    )
    assert result.returncode == 0, result.stderr

    [script] = (hydra_app / "multirun" / ".submitit").glob("*/*_submission.sh")
    flags = set(script.read_text().splitlines())
    expected = {
        "#SBATCH --partition=debug",
        "#SBATCH --time=7",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --nodes=1",
        "#SBATCH --gpus-per-node=0",
        "#SBATCH --array=0-1%1",
        "#SBATCH --signal=USR2@45",
        "#SBATCH --comment=optrepro-test",
    }
    assert expected <= flags, f"missing from {script}: {sorted(expected - flags)}"


@pytest.mark.parametrize(
    ("override", "scheduler_message"),
    [
        ("cluster.partition=nosuch", "Invalid partition name specified"),
        ("cluster.cpus_per_task=999", "More processors requested than permitted"),
    ],
)
def test_impossible_request_fails_with_the_schedulers_message(slurm_env, hydra_app, override, scheduler_message):
    result = launch(hydra_app, slurm_env, "seed=0,1", override)
    assert result.returncode != 0
    assert scheduler_message in result.stderr + result.stdout
    assert not list((hydra_app / "multirun").glob("*/job.json"))
