"""SAM under torch DDP on two CPU (gloo) processes, against single-process equivalents.

per_device: each rank perturbs with its own gradient, which is single-process
m-sharpness with m = per-device batch. global: pass-1 gradients are averaged
first, which is plain SAM on the concatenated batch.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.gloo import end_process_group
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from optrepro.optim.backend import LocalBackend
from optrepro.optim.sam import SAM
from optrepro.optim.two_pass import TwoPassStep

WORLD_SIZE, PER_DEVICE = 2, 8
MODES = ("per_device", "global")


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def full_batch():
    generator = torch.Generator().manual_seed(1)
    n = WORLD_SIZE * PER_DEVICE
    return (
        torch.randn(n, 4, generator=generator, dtype=torch.float64),
        torch.randint(0, 3, (n,), generator=generator),
        torch.arange(n),
    )


def sam_strategy(model: nn.Module, **kwargs) -> TwoPassStep:
    base = functools.partial(torch.optim.SGD, lr=0.5, momentum=0.9, weight_decay=1e-3)
    return TwoPassStep(SAM(model.parameters(), base, rho=0.5), **kwargs)


def run_rank(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    inputs, targets, indices = full_batch()
    shard = slice(rank * PER_DEVICE, (rank + 1) * PER_DEVICE)
    results = {}
    for mode in MODES:
        model = DistributedDataParallel(mlp())
        strategy = sam_strategy(model, perturbation_sync=mode)
        optimizer = strategy.optimizer
        clean_grads = []
        perturb = optimizer.perturb

        def record_then_perturb(model=model, perturb=perturb, clean_grads=clean_grads):
            clean_grads.extend(p.grad.clone() for p in model.parameters())
            return perturb()

        optimizer.perturb = record_then_perturb
        strategy.training_step(LocalBackend(model), (inputs[shard], targets[shard], indices[shard]), epoch=0)
        results[mode] = {
            "params": [p.detach().clone() for p in model.module.parameters()],
            "clean_grads": clean_grads,
        }
    torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    del model, strategy, optimizer, perturb, record_then_perturb  # the reducers go before the group they use
    end_process_group()


def single_process_params(**kwargs) -> list[torch.Tensor]:
    model = mlp()
    sam_strategy(model, **kwargs).training_step(LocalBackend(model), full_batch(), epoch=0)
    return [p.detach() for p in model.parameters()]


def assert_all_close(actual, expected):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)


def test_perturbation_sync_modes_match_single_process_equivalents(tmp_path):
    mp.spawn(run_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]

    for mode in MODES:  # DDP keeps the replicas identical
        assert_all_close(ranks[1][mode]["params"], ranks[0][mode]["params"])
    # pass 1 ran under no_sync: per-device gradients differ; global mode averaged them
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(ranks[0]["per_device"]["clean_grads"], ranks[1]["per_device"]["clean_grads"])
    )
    assert_all_close(ranks[1]["global"]["clean_grads"], ranks[0]["global"]["clean_grads"])

    assert_all_close(ranks[0]["per_device"]["params"], single_process_params(m_sharpness=PER_DEVICE))
    assert_all_close(ranks[0]["global"]["params"], single_process_params())
    assert any(not torch.allclose(a, b) for a, b in zip(ranks[0]["per_device"]["params"], ranks[0]["global"]["params"]))
