"""benchmarks/gpu_check.sh --dry-run: the GPU check's code paths on the CPU, and the JSON it leaves."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import pytest

from optrepro.paths import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from gpu_check import CIFAR_TEST, CIFAR_TRAIN, EPOCHS, bf16_peak  # noqa: E402


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.5),
        ("NVIDIA H100 NVL", 835.5),
        ("NVIDIA H200", 989.4),
        ("NVIDIA GH200 480GB", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.1),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
    ],
)
def test_bf16_peak_is_looked_up_by_card_name(name, peak):
    assert bf16_peak(name) == peak


def test_gpu_check_dry_run_writes_every_figure(tmp_path):
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and report["device"] == "cpu" and report["bf16_peak_tflops"] is None
    assert report["gpu_tests"]["exit_code"] == 0 and (tmp_path / "gpu_tests.log").is_file()
    assert report["skipped"] == [] and report["flops_per_sample"] > 0
    grid = {(r["precision"], r["channels_last"], r["compile"], r["method"]) for r in report["steps"]}
    assert grid == set(itertools.product(("fp32", "bf16"), (False, True), (False, True), ("sgd", "sam", "sam_m32")))
    for row in report["steps"]:
        assert row["ms_per_step"] > 0 and math.isclose(row["steps_per_s"], 1e3 / row["ms_per_step"])
        assert row["m_sharpness"] == (32 if row["method"] == "sam_m32" else None) and row["mfu_vs_bf16_peak"] is None
    expected_ratios = {"saf/sgd fp32 cl", "mesa/sgd fp32 cl", "sam/sgd bf16 cl compile", "sam_m32/sam fp32"}
    assert expected_ratios <= set(report["ratios"])
    preset_setting = ("fp32", True, False)  # +repro=sam_cifar's hardware=gpu: fp32, channels_last, eager
    sam_m32 = next(
        r["ms_per_step"]
        for r in report["steps"]
        if r["method"] == "sam_m32" and (r["precision"], r["channels_last"], r["compile"]) == preset_setting
    )
    sgd = next(
        r["ms_per_step"]
        for r in report["steps"]
        if r["method"] == "sgd" and (r["precision"], r["channels_last"], r["compile"]) == preset_setting
    )
    assert math.isclose(report["data_fraction_of_step"], report["data_ms_per_batch"] / sgd, rel_tol=1e-9)
    batch = report["batch"]
    by_hand = (
        EPOCHS
        * (
            (CIFAR_TRAIN // batch) * (sam_m32 + report["data_ms_per_batch"])
            + math.ceil(CIFAR_TEST / batch) * report["eval_ms_per_batch"]
        )
        / 3.6e6
    )
    assert math.isclose(report["projected_sam_cifar_h"]["preset (fp32 cl)"], by_hand, rel_tol=1e-9)
    assert "RATIO saf/sgd fp32 cl" in done.stdout and "pytest -m gpu: exit 0" in done.stdout


def test_gpu_check_without_a_gpu_says_so_in_one_line(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is visible")
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "gpu_check: no CUDA device is visible; run on a GPU node, or pass --dry-run to check the script"
    ]


def test_gpu_check_sh_rejects_a_missing_out_dir():
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "OUT_DIR missing" in done.stderr
