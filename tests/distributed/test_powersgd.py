"""PowerSGD through PyTorch's DDP comm hook: the bytes it all-reduces, its state, and the config that turns it on.

The two-process tests run DDP over gloo on a model with known shapes, Linear(8, 6) -> Tanh -> Linear(6, 3), rank 2,
min_compression_rate 1, so every count can be done by hand (float32, 4 bytes):
  weight 6 x 8: (6 + 8) * 2 = 28 < 48             -> P 6x2 + Q 8x2 = 28 numbers
  weight 3 x 6: (3 + 6) * 2 = 18, not < 18          -> sent whole, 18
  biases 6 and 3: 1-D, viewed as n x 1, never smaller -> sent whole, 9
  dense 48 + 18 + 9 = 75 numbers = 300 bytes; compressed 28 + 18 + 9 = 55 numbers = 220 bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.gloo import end_process_group
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import (
    PowerSGDState,
    powerSGD_hook,
)
from torch.nn.parallel import DistributedDataParallel

from optrepro.config import config_hash
from optrepro.distributed import build_ddp_strategy, check_grad_compression
from optrepro.distributed.compression import HookedDDPStrategy
from optrepro.distributed.powersgd import (
    CommCounter,
    counting_powersgd_hook,
    expected_sent_fraction,
)
from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.paths import REPO_ROOT

WORLD_SIZE, START_ITER, STEPS = 2, 2, 4
DENSE_BYTES, COMPRESSED_BYTES = 4 * 75, 4 * 55


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))


def batch_of(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(100 * step + rank)
    return torch.randn(16, 8, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def powersgd_state() -> PowerSGDState:
    return PowerSGDState(
        process_group=None,
        matrix_approximation_rank=2,
        start_powerSGD_iter=START_ITER,
        min_compression_rate=1,
        use_error_feedback=True,
        warm_start=True,
    )


def synced_grads(model: DistributedDataParallel, step: int) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    inputs, targets = batch_of(dist.get_rank(), step)
    nn.functional.cross_entropy(model(inputs), targets).backward()
    return [p.grad.clone() for p in model.module.parameters()]


def run_rank(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    results: dict[str, list] = {"counts": [], "counted": [], "plain": [], "dense": []}

    counter = CommCounter()
    counted_model, state = DistributedDataParallel(tiny_model()), powersgd_state()
    counted_model.register_comm_hook(state, counting_powersgd_hook(counter))
    for step in range(STEPS):
        results["counted"].append(synced_grads(counted_model, step))
        results["counts"].append(counter.take())
    results["error_keys"] = sorted(state.error_dict)
    results["error_norm"] = float(sum(e.norm() for e in state.error_dict.values()))
    results["q_keys"] = sorted(state.q_memory_dict)

    plain_model = DistributedDataParallel(tiny_model())  # PyTorch's hook as shipped: the instrument changes nothing
    plain_model.register_comm_hook(powersgd_state(), powerSGD_hook)
    dense_model = DistributedDataParallel(tiny_model())  # the plain averaging all-reduce
    dense_model.register_comm_hook(None, default_hooks.allreduce_hook)
    for step in range(STEPS):
        results["plain"].append(synced_grads(plain_model, step))
        results["dense"].append(synced_grads(dense_model, step))
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    del counted_model, plain_model, dense_model  # their reducers go before the group they use
    end_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("powersgd")
    mp.spawn(run_rank, args=(str(out / "init"), str(out)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def test_before_start_iter_the_hook_sends_the_dense_bytes_then_the_low_rank_ones(ranks):
    for result in ranks:
        sent = [counts[0] for counts in result["counts"]]
        dense = [counts[1] for counts in result["counts"]]
        steps = [counts[2] for counts in result["counts"]]
        assert sent == [DENSE_BYTES] * START_ITER + [COMPRESSED_BYTES] * (STEPS - START_ITER)
        assert dense == [DENSE_BYTES] * STEPS
        assert steps == [1] * STEPS


def test_measured_fraction_equals_the_expected_low_rank_fraction():
    shapes = [(6, 8), (6,), (3, 6), (3,)]
    assert expected_sent_fraction(shapes, rank=2, min_compression_rate=1) == pytest.approx(55 / 75, abs=0)
    assert COMPRESSED_BYTES / DENSE_BYTES == pytest.approx(55 / 75, abs=0)


def test_expected_fraction_treats_conv_kernels_ranks_and_the_threshold_as_the_hook_does():
    conv = (4, 3, 3, 3)  # viewed as 4 x 27: (4 + 27) * 2 = 62 numbers instead of 108
    assert expected_sent_fraction([conv], rank=2, min_compression_rate=1) == pytest.approx(62 / 108, abs=0)
    assert expected_sent_fraction([conv], rank=2, min_compression_rate=2) == 1.0  # 124 > 108: sent whole
    # rank above the smaller side is clipped to it: 2 x 50 at rank 4 is rank 2, (2 + 50) * 2 = 104 > 100
    assert expected_sent_fraction([(2, 50)], rank=4, min_compression_rate=1) == 1.0
    with pytest.raises(ValueError, match="no trainable parameters"):
        expected_sent_fraction([], rank=2, min_compression_rate=1)


def test_error_feedback_and_warm_start_state_exist_once_compression_runs(ranks):
    for result in ranks:
        assert result["error_keys"] == [0] and result["q_keys"] == [0]
        assert result["error_norm"] > 0  # the rank-2 residual of the 6 x 8 gradient, kept for the next step


def test_the_counting_hook_computes_exactly_what_pytorchs_hook_computes(ranks):
    for result in ranks:
        for counted, plain in zip(result["counted"], result["plain"], strict=True):
            for a, b in zip(counted, plain, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rank_2_gradients_differ_from_the_full_all_reduce_but_stay_finite(ranks):
    result = ranks[0]
    for step in range(START_ITER):  # vanilla all-reduce phase: the averages agree
        for a, b in zip(result["counted"][step], result["dense"][step], strict=True):
            torch.testing.assert_close(a, b)
    compressed, dense = result["counted"][START_ITER][0], result["dense"][START_ITER][0]  # the 6 x 8 weight
    assert torch.isfinite(compressed).all()
    assert not torch.allclose(compressed, dense, atol=1e-4)
    assert torch.linalg.matrix_rank(compressed) <= 2
    for a, b in zip(result["counted"][START_ITER][1:], result["dense"][START_ITER][1:], strict=True):
        torch.testing.assert_close(a, b)  # the tensors sent whole are the plain averages
    for a, b in zip(ranks[0]["counted"][-1], ranks[1]["counted"][-1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # every replica applies the same decompressed gradient


# ---- config ----------------------------------------------------------------------------------------------------
POWERSGD = ["+hardware/compression=powersgd"]


def test_compression_on_ddp_cpu_builds_the_hooked_strategy_with_the_configured_state(make_cfg):
    cfg = make_cfg(
        ["hardware=ddp_cpu", *POWERSGD, "hardware.grad_compression.rank=4", "hardware.grad_compression.start_iter=7"]
    )
    strategy, callbacks = build_ddp_strategy(cfg)
    assert isinstance(strategy, HookedDDPStrategy) and len(callbacks) == 1
    state = strategy._ddp_comm_state
    assert (state.matrix_approximation_rank, state.start_powerSGD_iter, state.min_compression_rate) == (4, 7, 2)
    assert state.use_error_feedback and state.warm_start


def test_no_compression_is_the_plain_strategy_and_compression_another_run(make_cfg):
    plain = make_cfg(["hardware=ddp_cpu"])
    assert plain.hardware.grad_compression is None
    assert build_ddp_strategy(plain) == ("ddp", [])
    assert config_hash(make_cfg(["hardware=ddp_cpu", *POWERSGD])) != config_hash(plain)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["hardware=cpu", *POWERSGD], "hardware=ddp_cpu"),
        (["hardware=ddp_cpu", "optimizer=gam", *POWERSGD], "all-reduces gradients itself"),
        (
            ["hardware=ddp_cpu", "optimizer=sam", "optimizer.perturbation_sync=global", *POWERSGD],
            "perturbation_sync=per_device",
        ),
        (["hardware=ddp_cpu", *POWERSGD, "hardware.grad_compression.start_iter=1"], "start_iter >= 2"),
        (["hardware=ddp_cpu", *POWERSGD, "hardware.grad_compression.rank=0"], "at least 1"),
        (["hardware=ddp_cpu", *POWERSGD, "+hardware.grad_compression.ranks=2"], "unknown keys ['ranks']"),
        (["hardware=ddp_cpu", "hardware.grad_compression={name: powersgd}"], "+hardware/compression=powersgd"),
    ],
)
def test_bad_compression_configs_say_what_to_change(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as error:
        check_grad_compression(make_cfg(overrides))
    assert message in str(error.value)


def test_an_unknown_compressor_lists_the_valid_ones(make_cfg):
    with pytest.raises(UnknownChoiceError, match="valid choices: powersgd"):
        check_grad_compression(make_cfg(["hardware=ddp_cpu", *POWERSGD, "hardware.grad_compression.name=topk"]))


def test_sam_per_device_is_accepted(make_cfg):
    assert check_grad_compression(make_cfg(["hardware=ddp_cpu", "optimizer=sam", *POWERSGD])) is not None


# ---- end to end through run.py and Lightning ---------------------------------------------------------------
@pytest.mark.slow
def test_a_lightning_ddp_run_records_measured_and_expected_bytes(tmp_path):
    """2 gloo processes through run.py: the first epoch mixes dense and compressed steps, the second is all
    compressed and its measured fraction equals the expected one exactly."""
    cmd = [
        sys.executable,
        "run.py",
        "hardware=ddp_cpu",
        *POWERSGD,
        "hardware.grad_compression.start_iter=3",
        "dataset=digits",
        "model=mlp",
        "logger=csv",
        "train.checkpoint=false",
        "train.batch_size=64",
        "limits.max_epochs=2",
        "limits.train_batches=6",
        f"paths.runs_dir={tmp_path}",
    ]
    done = subprocess.run(cmd, check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    first, last = record["history"]
    assert last["comm/compression_ratio"] == pytest.approx(last["comm/expected_ratio"], rel=1e-12)
    assert last["comm/expected_ratio"] < 0.1
    dense, compressed = last["comm/dense_bytes_per_step"], last["comm/bytes_per_step"]
    assert first["comm/bytes_per_step"] == pytest.approx((3 * dense + 3 * compressed) / 6, rel=1e-12)
    assert record["metrics"]["final"]["comm/compression_ratio"] == last["comm/compression_ratio"]
