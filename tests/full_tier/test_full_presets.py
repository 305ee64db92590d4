"""Every `full` preset, on the CPU, across an epoch boundary on generated data in its dataset's real on-disk format.

Each run uses the preset's model, optimizer, m-sharpness, schedule and augmentation through the product's own
data path (hub parquet / save_to_disk for CIFAR, IDX for Fashion-MNIST, JPEG class folders for ImageNet); only
the dataset size, batch, device/process count and step limits change (tests/full_tier/plan.py says how). The run
must end finished, with the number of steps its epochs' short last batches imply, and an evaluation. WRN-28-10,
ResNet-18 and ResNet-50 take tens of seconds to minutes a step on one core: those sit behind `slow`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from datagen.formats import write_cifar_parquet, write_cifar_saved, write_fashion_mnist_idx, write_imagenet_folders
from full_tier.plan import CpuPlan, drops_last, grown_epoch_steps, paper_file_loader, plan_for
from full_tier.presets import compose_full_presets, full_presets
from helpers.compose import compose_config

from optrepro.paths import REPO_ROOT
from optrepro.train import run

# The default suite's share: SAM's Table-1 run (WRN-28-10, m=32, its 16-image tail that m=32 cannot split), SAM's
# label-noise run at its real batch and remainder (256 + 80, m=32), a grokking and a NOTEARS preset.
FAST = {"sam_cifar", "sam_label_noise", "grokking_stablemax", "notears_topo_er2_d50", "rnn_torder_clipreg_full"}
# A NOTEARS step limit: one outer augmented-Lagrangian iteration.
STRUCTURE_LIMITS = ["structure.notears.max_iter=1"]
SUBPROCESS_TIMEOUT_S = 1800


def test_full_presets_are_those_whose_composed_tier_is_full():
    """The tier comes from the composed config: sam_cifar inherits it from its setting, sam_fmnist_cpu is cpu."""
    assert compose_full_presets(["sam_cifar", "sam_fmnist_cpu", "grokking_stablemax", "rnn_torder_clip_smoke"]) == (
        "sam_cifar",
        "grokking_stablemax",
    )
    assert {"sam_cifar", "notears_topo_er2_d50", "rnn_torder_clipreg_full"} <= set(full_presets())


def generate_data(plan: CpuPlan, dataset: str, folder: Path) -> str | None:
    """Write the plan's dataset in the real format; None for data the product generates itself."""
    if dataset == "cifar10":
        return str(write_cifar_parquet(folder, "cifar10", plan.num_train, plan.num_test))
    if dataset == "cifar100":
        return str(write_cifar_saved(folder, "cifar100", plan.num_train, plan.num_test))
    if dataset in ("fashion_mnist", "mnist10"):  # MNIST's IDX files have Fashion-MNIST's names and layout
        return str(write_fashion_mnist_idx(folder, plan.num_train, plan.num_test))
    if dataset == "imagenet":
        classes = 5
        per_class = [plan.num_train // classes + (i < plan.num_train % classes) for i in range(classes)]
        write_imagenet_folders(folder, per_class, val_per_class=plan.num_test // classes + 1)
        return str(folder)
    return None


def run_in_subprocess(overrides: list[str], runs_dir: Path) -> dict:
    """Multi-process presets: Lightning re-launches the entry script for each gloo rank, so run.py runs them."""
    done = subprocess.run(
        [sys.executable, "run.py", *overrides],
        check=False,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(runs_dir.rglob("record.json")).read_text())


def run_preset(overrides: list[str], processes: int, tmp_path: Path) -> dict:
    common = [f"paths.data_dir={tmp_path / 'data'}", f"paths.runs_dir={tmp_path / 'runs'}"]
    if processes > 1:
        return run_in_subprocess([*overrides, *common], tmp_path / "runs")
    return run(compose_config([*overrides, *common]))


def assert_same_setting_except_overrides(record: dict, preset: str) -> None:
    """Model, optimizer, scheduler and augmentation are the preset's own."""
    preset_cfg = compose_config([f"+repro={preset}"])
    for block in ("model", "optimizer", "scheduler"):
        assert record["config"][block] == json.loads(json.dumps(dict_of(preset_cfg[block]))), block
    assert record["config"]["dataset"].get("augment") == json.loads(json.dumps(dict_of(preset_cfg.dataset.augment)))


def dict_of(node):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True)


@pytest.mark.parametrize(
    "preset", [p if p in FAST else pytest.param(p, marks=pytest.mark.slow) for p in full_presets()]
)
def test_full_preset_crosses_an_epoch_boundary_on_generated_data(preset, tmp_path):
    cfg = compose_config([f"+repro={preset}"])
    if cfg.task._target_.endswith(
        ".StructureLearningTask"
    ):  # no data files, no epochs: the solver on the product's linear-SEM data
        record = run(compose_config([f"+repro={preset}", "logger=csv", *STRUCTURE_LIMITS], tmp_path))
        assert record["status"] == "finished", record["error"]
        assert record["repro"]["tier"] == "full" and "graph/shd" in record["metrics"]["final"]
        return
    plan = plan_for(preset, cfg)
    paper_files = paper_file_loader(cfg)
    data_path = (
        str(paper_files.write_sample(tmp_path / "dataset", cfg.dataset, plan.num_train))
        if paper_files
        else generate_data(plan, cfg.dataset.name, tmp_path / "dataset")
    )
    record = run_preset(plan.overrides(data_path), plan.processes, tmp_path)
    print(f"\nFULLTIER {preset} {json.dumps({'plan': plan.__dict__, 'timing': record['timing']})}")
    assert record["status"] == "finished", record["error"]
    assert record["repro"]["name"] == preset and record["repro"]["tier"] == "full"
    assert record["hardware"]["world_size"] == plan.processes
    steps_per_epoch = grown_epoch_steps(record, plan, drops_last(cfg)) or plan.steps_per_epoch
    assert record["timing"]["steps"] == plan.epochs * steps_per_epoch
    assert [row["epoch"] for row in record["history"] if "train/loss" in row] == list(range(plan.epochs))
    assert "test/loss" in record["metrics"]["final"]  # every task's evaluation (forecasts have no accuracy)
    assert_same_setting_except_overrides(record, preset)
    run_dir = next((tmp_path / "runs").rglob("record.json")).parent
    if cfg.train.checkpoint:
        assert (run_dir / "checkpoints" / "last.ckpt").exists()
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # WRN-28-10's are 300 MB each


def test_powersgd_full_preset_on_cpu_processes_keeps_one_ddp_bucket():
    """ResNet-18 spans two DDP buckets at the default 25 MB; on gloo PowerSGD's per-bucket chains then interleave
    differently on the two ranks and abort the first compressed step (powersgd_cifar10_rank1/rank4 above did)."""
    from optrepro.distributed.compression import GLOO_BUCKET_CAP_MB, build_ddp_strategy

    overrides = ["+repro=powersgd_cifar10_rank1", "hardware.devices=2", "hardware.num_nodes=1"]
    on_cpu, _ = build_ddp_strategy(compose_config([*overrides, "hardware.accelerator=cpu"]))
    on_gpu, _ = build_ddp_strategy(compose_config(overrides))
    assert on_cpu._ddp_kwargs["bucket_cap_mb"] == GLOO_BUCKET_CAP_MB >= 45  # MB of ResNet-18's fp32 gradients
    assert "bucket_cap_mb" not in on_gpu._ddp_kwargs  # NCCL keeps DDP's default buckets
