"""slurm/make_overrides.py: a Hydra sweep becomes one overrides line per array element."""

import shlex
import subprocess
import sys

from optrepro.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "slurm" / "make_overrides.py"


def make_overrides(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_sweep_becomes_the_cartesian_product_one_line_per_element(tmp_path):
    result = make_overrides(
        tmp_path, "seed=0,1,2", "optimizer=sgd,sam", "+repro=sam_fmnist_cpu", "--output", "sweep.txt"
    )
    assert result.returncode == 0, result.stderr

    lines = (tmp_path / "sweep.txt").read_text().splitlines()
    assert [shlex.split(line) for line in lines] == [
        ["seed=" + seed, "optimizer=" + opt, "+repro=sam_fmnist_cpu"] for seed in "012" for opt in ("sgd", "sam")
    ]
    assert shlex.split(result.stdout) == [  # a CPU preset asks for no GPU: a CPU cluster rejects any GPU request
        "sbatch",
        "--array=0-5",
        "--nodes=1",
        "--ntasks-per-node=1",
        "--cpus-per-task=4",
        "--output=sweep_%A_%a.out",
        "slurm/sweep.sbatch",
        "sweep.txt",
    ]


def test_the_resources_come_from_each_elements_config(tmp_path):
    gpu = make_overrides(tmp_path, "seed=0,1", "hardware=ddp", "hardware.devices=4", "cluster.cpus_per_task=8")
    assert "--ntasks-per-node=4 --cpus-per-task=8 --gpus-per-node=4" in gpu.stdout, gpu.stderr
    mixed = make_overrides(tmp_path, "seed=0", "hardware=cpu,gpu")
    assert mixed.returncode == 2 and "ask for different resources" in mixed.stderr and "split the sweep" in mixed.stderr
    unknown = make_overrides(tmp_path, "seed=0", "optimizer=nosuch")
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip()
        .splitlines()[-1]
        .endswith("Could not find 'optimizer/nosuch'; check the overrides with `python run.py <overrides> --cfg job`")
    )


def test_hydra_sweep_syntax_and_parallelism_limit(tmp_path):
    result = make_overrides(tmp_path, "seed=range(0,3)", "name='a b'", "hardware=cpu", "--max-parallel", "2")
    assert result.returncode == 0, result.stderr

    [written] = (tmp_path / "runs" / "sweeps").glob("*.txt")
    assert [shlex.split(line) for line in written.read_text().splitlines()] == [
        [f"seed={seed}", "name='a b'", "hardware=cpu"] for seed in range(3)
    ]
    assert "--array=0-2%2" in shlex.split(result.stdout)


def test_bad_sweep_syntax_is_reported_with_the_sweep(tmp_path):
    result = make_overrides(tmp_path, "seed=0,")
    assert result.returncode == 2
    assert "cannot expand the sweep ['seed=0,']" in result.stderr
    assert not (tmp_path / "runs").exists()
