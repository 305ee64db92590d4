"""SAF / MESA trajectory step: exact math on a float64 linear softmax model, memory and EMA state."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers.gloo import end_process_group
from omegaconf import OmegaConf
from torch import nn

from optrepro.optim.backend import LocalBackend
from optrepro.optim.saf import (
    EmaTeacher,
    OutputMemory,
    TrajectoryStep,
    build_trajectory_step,
    trajectory_kl,
)
from optrepro.optim.standard import StandardStep

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "optimizer"
N, D, C, B = 12, 4, 3, 6
LR, LAMBDA, TAU = 0.1, 0.3, 2.0


def linear_model(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(D, C, bias=False).double()


def dataset(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=generator, dtype=torch.float64), torch.randint(0, C, (N,), generator=generator)


def batch_of(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = dataset()
    idx_t = torch.tensor(idx)
    return x[idx_t], y[idx_t], idx_t


def saf_step(
    model: nn.Module, *, epochs_ago: int = 2, start_epoch: int = 2, accumulate: int = 1, momentum: float = 0.0
):
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=momentum)
    memory = OutputMemory(N, C, epochs_ago, torch.float64)
    step = TrajectoryStep(
        optimizer, memory, trajectory_weight=LAMBDA, temperature=TAU, start_epoch=start_epoch, accumulate=accumulate
    )
    return optimizer, memory, step


def expected_weight_after_step(weight: torch.Tensor, x, y, reference_logits) -> torch.Tensor:
    """Hand gradient of CE + lambda*tau^2*KL(q||p_tau) for z = x W^T: dz = (p - e_y)/B + lambda*tau*(p_tau - q)/B."""
    z = x @ weight.T
    p = torch.exp(z - z.logsumexp(-1, keepdim=True))
    p_tau = torch.exp(z / TAU - (z / TAU).logsumexp(-1, keepdim=True))
    q = torch.exp(reference_logits / TAU - (reference_logits / TAU).logsumexp(-1, keepdim=True))
    one_hot = torch.eye(C, dtype=torch.float64)[y]
    dz = (p - one_hot) / len(y) + LAMBDA * TAU * (p_tau - q) / len(y)
    return weight - LR * dz.T @ x


def test_trajectory_kl_matches_definition():
    z, z_ref = torch.randn(5, C, dtype=torch.float64), torch.randn(5, C, dtype=torch.float64)
    p, q = torch.softmax(z / TAU, -1), torch.softmax(z_ref / TAU, -1)
    expected = TAU**2 * (q * (q.log() - p.log())).sum(-1).mean()
    torch.testing.assert_close(trajectory_kl(z, z_ref, TAU), expected, rtol=1e-14, atol=0)


def test_saf_step_equals_hand_computed_gradient():
    model = linear_model()
    _, memory, step = saf_step(model, epochs_ago=2, start_epoch=2)
    epoch = 3
    memory.logits[epoch % 2] = torch.randn(N, C, dtype=torch.float64) * 3
    x, y, idx = batch_of([0, 3, 5, 7, 8, 11])
    expected = expected_weight_after_step(model.weight.detach().clone(), x, y, memory.logits[epoch % 2, idx].clone())

    step.training_step(LocalBackend(model), (x, y, idx), epoch=epoch)

    torch.testing.assert_close(model.weight.detach(), expected, rtol=1e-12, atol=1e-12)


def test_micro_batches_give_the_same_step():
    models = [linear_model(), linear_model()]
    memories = []
    for model, accumulate in zip(models, (1, 3)):
        _, memory, step = saf_step(model, accumulate=accumulate)
        memory.logits.copy_(torch.arange(2 * N * C, dtype=torch.float64).reshape(2, N, C).sin())
        step.training_step(LocalBackend(model), batch_of([1, 2, 4, 6, 9, 10]), epoch=5)
        memories.append(memory.logits)
    torch.testing.assert_close(models[0].weight, models[1].weight, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(memories[0], memories[1], rtol=1e-12, atol=1e-15)


def test_before_start_epoch_the_step_is_plain_sgd_bit_for_bit():
    saf_model, sgd_model = linear_model(), linear_model()
    _, memory, step = saf_step(saf_model, start_epoch=2, momentum=0.9)
    memory.logits.normal_()  # a trajectory term would change the update
    sgd = StandardStep(torch.optim.SGD(sgd_model.parameters(), lr=LR, momentum=0.9))
    for epoch in range(3):  # epochs 0, 1, 2 are all <= start_epoch
        batch = batch_of([epoch, 4 + epoch, 8 + epoch])
        out = step.training_step(LocalBackend(saf_model), batch, epoch=epoch)
        sgd.training_step(LocalBackend(sgd_model), batch, epoch=epoch)
        assert "trajectory_loss" not in out.metrics
    assert torch.equal(saf_model.weight, sgd_model.weight)


def test_memory_records_exactly_the_batch_indices_in_the_epoch_slot():
    model = linear_model()
    _, memory, step = saf_step(model, epochs_ago=3, start_epoch=2)
    memory.logits.normal_()
    before = memory.logits.clone()
    x, y, idx = batch_of([2, 5, 9])
    logits_before_update = model(x).detach()

    out = step.training_step(LocalBackend(model), (x, y, idx), epoch=4)

    slot = 4 % 3
    torch.testing.assert_close(memory.logits[slot, idx], logits_before_update, rtol=0, atol=0)
    torch.testing.assert_close(out.logits, logits_before_update, rtol=0, atol=0)
    untouched = torch.ones(3, N, dtype=torch.bool)
    untouched[slot, idx] = False
    assert torch.equal(memory.logits[untouched], before[untouched])


def test_reference_is_the_output_recorded_epochs_ago():
    """Full-batch epochs: at epoch e the trajectory term compares with the logits of epoch e - E_tilde."""
    epochs_ago, start_epoch = 2, 2
    model = linear_model()
    _, _, step = saf_step(model, epochs_ago=epochs_ago, start_epoch=start_epoch)
    everything = batch_of(list(range(N)))
    logits_by_epoch = []
    for epoch in range(7):
        before = model(everything[0]).detach()
        out = step.training_step(LocalBackend(model), everything, epoch=epoch)
        logits_by_epoch.append(before)
        if epoch <= start_epoch:
            assert "trajectory_loss" not in out.metrics
            continue
        expected = trajectory_kl(before, logits_by_epoch[epoch - epochs_ago], TAU)
        torch.testing.assert_close(out.metrics["trajectory_loss"], expected, rtol=1e-6, atol=0)
        for wrong_lag in (epochs_ago - 1, epochs_ago + 1):
            wrong = trajectory_kl(before, logits_by_epoch[epoch - wrong_lag], TAU)
            assert not torch.isclose(out.metrics["trajectory_loss"], wrong, rtol=1e-3)


def test_start_epoch_before_memory_is_filled_is_rejected():
    model = linear_model()
    with pytest.raises(ValueError, match="E_start"):
        saf_step(model, epochs_ago=3, start_epoch=0)


def test_state_dict_round_trip_resumes_identically():
    model = linear_model()
    optimizer, _, step = saf_step(model, momentum=0.9)
    batches = [batch_of([0, 1, 2, 3]), batch_of([4, 5, 6, 7]), batch_of([8, 9, 10, 11])]
    for epoch in range(4):
        step.training_step(LocalBackend(model), batches[epoch % 3], epoch=epoch)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), step.state_dict()))

    resumed = linear_model(seed=99)
    resumed_optimizer, _, resumed_step = saf_step(resumed, momentum=0.9)
    resumed.load_state_dict(saved[0])
    resumed_optimizer.load_state_dict(saved[1])
    resumed_step.load_state_dict(saved[2])
    for epoch in range(4, 7):
        original_out = step.training_step(LocalBackend(model), batches[epoch % 3], epoch=epoch)
        resumed_out = resumed_step.training_step(LocalBackend(resumed), batches[epoch % 3], epoch=epoch)
        assert torch.equal(original_out.metrics["trajectory_loss"], resumed_out.metrics["trajectory_loss"])
    assert torch.equal(model.weight, resumed.weight)
    assert torch.equal(step.reference.logits, resumed_step.reference.logits)


def mesa_step(model: nn.Module, decay: float):
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    teacher = EmaTeacher(model, decay)
    return teacher, TrajectoryStep(optimizer, teacher, trajectory_weight=LAMBDA, temperature=TAU, start_epoch=0)


def test_mesa_ema_update_is_exact_and_never_gets_gradients():
    model = linear_model()
    teacher, step = mesa_step(model, decay=0.75)
    with torch.no_grad():
        teacher.model.weight.normal_()
    ema_before = teacher.model.weight.detach().clone()

    step.training_step(LocalBackend(model), batch_of([0, 1, 2, 3]), epoch=1)

    expected = 0.75 * ema_before + 0.25 * model.weight.detach()
    torch.testing.assert_close(teacher.model.weight.detach(), expected, rtol=1e-15, atol=1e-15)
    assert teacher.model.weight.grad is None and not teacher.model.weight.requires_grad
    assert not teacher.model.training


def test_mesa_trajectory_term_uses_the_ema_outputs():
    model = linear_model()
    teacher, step = mesa_step(model, decay=0.5)
    with torch.no_grad():
        teacher.model.weight.normal_()
    x, y, idx = batch_of([1, 3, 5, 7, 9, 11])
    teacher_logits = teacher.model(x).detach()
    expected = expected_weight_after_step(model.weight.detach().clone(), x, y, teacher_logits)

    out = step.training_step(LocalBackend(model), (x, y, idx), epoch=1)

    torch.testing.assert_close(model.weight.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.metrics["trajectory_loss"], trajectory_kl(out.logits, teacher_logits, TAU))


def test_mesa_ema_averages_batchnorm_statistics_and_forward_leaves_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, C), nn.BatchNorm1d(C)).double()
    teacher, step = mesa_step(model, decay=0.5)
    ema_mean_before = teacher.model[1].running_mean.clone()
    x, y, idx = batch_of([0, 1, 2, 3, 4, 5])

    step.training_step(LocalBackend(model), (x, y, idx), epoch=1)

    torch.testing.assert_close(teacher.model[1].running_mean, 0.5 * ema_mean_before + 0.5 * model[1].running_mean)
    assert teacher.model[1].num_batches_tracked == model[1].num_batches_tracked == 1


@pytest.mark.parametrize("name", ["saf", "mesa"])
def test_configs_build_the_step(name):
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    assert cfg.step == "trajectory"
    optimizer, step = build_trajectory_step(cfg, linear_model(), num_train_samples=N, num_classes=C)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.1
    assert step.trajectory_weight == {"saf": 0.3, "mesa": 0.8}[name]
    assert (step.temperature, step.start_epoch) == (5.0, 5)
    if name == "saf":
        assert step.reference.logits.shape == (3, N, C)
    else:
        assert step.reference.decay == 0.9998


def _record_on_rank(rank: int, port: int, results) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    memory = OutputMemory(6, 2, epochs_ago=2)
    memory.record(torch.arange(3) + 3 * rank, torch.full((3, 2), float(rank + 1)), epoch=1)
    results[rank] = memory.logits.clone()
    end_process_group()


@pytest.mark.slow
def test_memory_records_the_samples_of_every_rank():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_record_on_rank, args=(port, results), nprocs=2)
    expected = torch.zeros(2, 6, 2)
    expected[1, :3], expected[1, 3:] = 1.0, 2.0
    for rank in (0, 1):
        assert torch.equal(results[rank], expected)
