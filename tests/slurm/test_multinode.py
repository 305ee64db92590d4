"""`hardware=multinode` through the SLURM launcher on two local nodes (two slurmd, one task each, gloo on CPU)
ends where the single-process run ends, and bit-identical to the same two ranks on one node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optrepro.paths import REPO_ROOT
from optrepro.records.record import read_record

pytestmark = pytest.mark.slurm

# As the 2-process DDP test (tests/test_train.py): SGD on a BatchNorm-free model, where the union of the two
# rank batches is the single-process batch. One thread each, so every run sums in the same order.
TINY = [
    "dataset=digits",
    "model=mlp",
    "optimizer=sgd",
    "logger=csv",
    "train.batch_size=64",
    "limits.max_epochs=1",
    "limits.train_batches=5",
    "train.checkpoint=true",
    "hardware.cpu_threads=1",
]
# The GPU preset, resized for the local cluster's CPU nodes: 1 process per node, so 2 ranks over gloo.
MULTINODE_ON_CPU = [
    "hardware=multinode",
    "hardware.accelerator=cpu",
    "hardware.devices=1",
    "hardware.gpus_per_node=0",
    "hardware.channels_last=false",
    "hardware.deterministic=true",
]


@pytest.fixture
def two_node_env(slurm_env: dict[str, str]) -> dict[str, str]:
    nodes = subprocess.run(
        ["sinfo", "--noheader", "--Node", "--format=%N"], env=slurm_env, capture_output=True, text=True, check=True
    ).stdout.split()
    if len(set(nodes)) < 2:
        pytest.fail(
            f"the local cluster has {len(set(nodes))} node(s), this test needs 2; run: "
            "slurm/local-cluster.sh stop && slurm/local-cluster.sh start --nodes 2",
            pytrace=False,
        )
    return slurm_env


def run_py(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(job: subprocess.Popen, what: str) -> None:
    output, _ = job.communicate(timeout=600)
    assert job.returncode == 0, f"{what} failed:\n{output[-3000:]}"


def the_run(runs_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The one run's record and its final weights (checkpoints/last.ckpt, written at the epoch end)."""
    [record_path] = runs_dir.rglob("record.json")
    checkpoint = torch.load(record_path.parent / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return read_record(record_path.parent), checkpoint["state_dict"]


def without_clocks(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in history]


def test_two_nodes_one_process_each_equal_the_single_process_run(two_node_env, tmp_path):
    sweep = run_py(
        [
            "-m",
            "hydra/launcher=slurm",
            *MULTINODE_ON_CPU,
            *TINY,
            "cluster.cpus_per_task=1",
            "cluster.timeout_min=20",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"paths.runs_dir={tmp_path / 'multinode'}",
        ],
        two_node_env,
    )
    # The references run here while the job waits in the queue and polls; neither runs under SLURM.
    local = {key: value for key, value in two_node_env.items() if not key.startswith("SLURM_")}
    finish(run_py([*TINY, "hardware=cpu", f"paths.runs_dir={tmp_path / 'single'}"], local), "the single-process run")
    finish(run_py([*TINY, "hardware=ddp_cpu", f"paths.runs_dir={tmp_path / 'one_node'}"], local), "the 2-process run")
    finish(sweep, "the multi-node sweep")

    [submission] = (tmp_path / "sweep" / ".submitit").glob("*/*_submission.sh")
    job_dir = submission.parent
    script = set(submission.read_text().splitlines())
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=0"} <= script
    rank_zero_log = (job_dir / f"{job_dir.name}_0_log.err").read_text()
    assert "distributed_backend=gloo" in rank_zero_log and "Starting with 2 processes" in rank_zero_log

    (multinode, multinode_weights), (single, single_weights), (one_node, one_node_weights) = (
        the_run(tmp_path / name) for name in ("multinode", "single", "one_node")
    )
    assert multinode["status"] == "finished", multinode["error"]
    assert multinode["slurm"]["node_list"] == "node[1-2]"  # one task on each node
    assert (multinode["hardware"]["num_nodes"], multinode["hardware"]["devices_per_node"]) == (2, 1)
    assert multinode["hardware"]["world_size"] == 2 and multinode["hardware"]["per_device_batch_size"] == 32

    # Across nodes, the same two ranks do the same arithmetic as on one node: bit-identical.
    assert without_clocks(multinode["history"]) == without_clocks(one_node["history"])
    assert multinode_weights.keys() == one_node_weights.keys()
    assert all(torch.equal(multinode_weights[k], one_node_weights[k]) for k in multinode_weights)
    # Against one process, the mean of two half-batch gradients sums in another order: equal to rounding.
    for metric in ("train/loss", "test/loss", "test/acc"):
        assert multinode["metrics"]["final"][metric] == pytest.approx(
            single["metrics"]["final"][metric], rel=1e-5, abs=1e-6
        )
    assert multinode_weights.keys() == single_weights.keys()
    for name, weight in multinode_weights.items():
        torch.testing.assert_close(weight, single_weights[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("bad", [["--nodes", "0"], ["--nodes", "two"], ["--nodes"], ["--node", "2"]])
def test_start_refuses_a_bad_node_count_in_one_line_before_any_work(bad, tmp_path):
    done = subprocess.run(
        [str(REPO_ROOT / "slurm" / "local-cluster.sh"), "start", *bad],
        capture_output=True,
        text=True,
        env={**os.environ, "OPTREPRO_SLURM_DIR": str(tmp_path / "state")},
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("local-cluster: ") and "--node" in line
    assert not (tmp_path / "state").exists()
