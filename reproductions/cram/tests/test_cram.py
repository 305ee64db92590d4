"""CrAM (reproductions/cram): the step against a hand computation, the pruning operator, BN re-tuning, errors, smoke."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.compose import compose_config
from helpers.rejected import config_check_error
from torch import nn

from optrepro.optim.backend import LocalBackend
from optrepro.train import run
from reproductions.cram.callback import OneShotPruningCallback
from reproductions.cram.pruning import (
    check_sparsity,
    global_magnitude_masks,
    prune_global_magnitude,
    retune_batchnorm,
)
from reproductions.cram.step import CrAMStep

X = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])
W0 = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]])
B0 = torch.tensor([0.1, -0.3])


def half_square_loss(logits, targets):
    """f = mean_i 0.5 ||W x_i + b||^2: grad_W = mean_i r_i x_i^T, grad_b = mean_i r_i with r_i = W x_i + b."""
    return 0.5 * logits.pow(2).sum(dim=1).mean()


def hand_grads(weight, bias):
    residual = X @ weight.T + bias  # (n, 2)
    return residual.T @ X / len(X), residual.mean(dim=0)


def hand_top_half_mask(weight):
    """Keep the 3 largest of the 6 |W| (no ties in these numbers)."""
    flat = weight.abs().reshape(-1)
    keep = flat.argsort(descending=True)[:3]
    mask = torch.zeros(6)
    mask[keep] = 1.0
    return mask.view_as(weight)


def tiny_model():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(W0)
        model.bias.copy_(B0)
    return model


@pytest.mark.parametrize("plus", [True, False])
@pytest.mark.parametrize("sparse_grad", [True, False])
def test_cram_step_matches_a_hand_computation(plus, sparse_grad):
    rho, lr = 0.5, 0.1
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    step = CrAMStep(optimizer, rho=rho, sparsities=[0.5], plus=plus, sparse_grad=sparse_grad)
    output = step.training_step(
        LocalBackend(model, loss_fn=half_square_loss), (X, torch.zeros(2, dtype=torch.long), torch.arange(2)), epoch=0
    )

    g_w, g_b = hand_grads(W0, B0)
    w_pert, b_pert = W0 + rho * g_w, B0 + rho * g_b  # unnormalized perturbation (official grad_norm=False)
    mask = hand_top_half_mask(w_pert)  # the bias (1-D) is not pruned
    gc_w, gc_b = hand_grads(w_pert * mask, b_pert)
    if sparse_grad:
        gc_w = gc_w * mask
    d_w, d_b = (gc_w + g_w, gc_b + g_b) if plus else (gc_w, gc_b)
    torch.testing.assert_close(model.weight.detach(), W0 - lr * d_w, rtol=0, atol=1e-7)
    torch.testing.assert_close(model.bias.detach(), B0 - lr * d_b, rtol=0, atol=1e-7)
    clean_loss = 0.5 * (X @ W0.T + B0).pow(2).sum(dim=1).mean()
    torch.testing.assert_close(output.loss, clean_loss)  # the step reports the clean pass, as SAM's does
    compressed_loss = 0.5 * (X @ (w_pert * mask).T + b_pert).pow(2).sum(dim=1).mean()
    torch.testing.assert_close(output.metrics["compressed_loss"], compressed_loss)


def test_cram_step_normalized_perturbation_and_micro_batches_match_the_full_batch():
    rho, lr = 0.3, 0.05
    model = tiny_model()
    step = CrAMStep(torch.optim.SGD(model.parameters(), lr=lr), rho=rho, sparsities=[0.5], normalize=True, accumulate=2)
    step.training_step(
        LocalBackend(model, loss_fn=half_square_loss), (X, torch.zeros(2, dtype=torch.long), torch.arange(2)), epoch=0
    )
    g_w, g_b = hand_grads(W0, B0)
    norm = torch.sqrt(g_w.pow(2).sum() + g_b.pow(2).sum())
    w_pert, b_pert = W0 + rho * g_w / norm, B0 + rho * g_b / norm
    mask = hand_top_half_mask(w_pert)
    gc_w, gc_b = hand_grads(w_pert * mask, b_pert)
    torch.testing.assert_close(model.weight.detach(), W0 - lr * (gc_w * mask + g_w), rtol=0, atol=1e-7)
    torch.testing.assert_close(model.bias.detach(), B0 - lr * (gc_b + g_b), rtol=0, atol=1e-7)


def test_cram_step_keeps_the_clean_pass_batchnorm_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    inputs = torch.randn(8, 3)
    reference = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    reference.load_state_dict(model.state_dict())
    reference.train()
    reference(inputs)  # one clean forward: the statistics the step must leave behind
    step = CrAMStep(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1, sparsities=[0.7])
    step.training_step(LocalBackend(model), (inputs, torch.randint(0, 2, (8,)), torch.arange(8)), epoch=0)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(model[1], name), getattr(reference[1], name), rtol=0, atol=0)


def test_sparsity_draws_are_seeded_and_survive_a_checkpoint():
    def draws(step, n=20):
        return [step.draw_sparsity() for _ in range(n)]

    def make(seed):
        return CrAMStep(
            torch.optim.SGD(tiny_model().parameters(), lr=0.1), rho=0.1, sparsities=[0.3, 0.5, 0.9], seed=seed
        )

    first = make(3)
    assert draws(first) == draws(make(3)) and set(draws(make(3), 200)) == {0.3, 0.5, 0.9}
    state = first.state_dict()
    resumed = make(99)
    resumed.load_state_dict(state)
    assert draws(resumed) == draws(first)


def test_global_magnitude_mask_is_exact_top_k_across_tensors_and_ties_keep_the_lower_position():
    first = torch.tensor([[3.0, -1.0], [2.0, -2.0]])
    second = torch.tensor([[-2.0, 0.5]])
    masks = global_magnitude_masks([first, second], 0.5)  # keep ceil(6 * 0.5) = 3: |3| and the first two |2|
    assert masks[0].tolist() == [[True, False], [True, True]]
    assert masks[1].tolist() == [[False, False]]
    masks = global_magnitude_masks([first, second], 0.6)  # keep ceil(6 * 0.4) = 3 (ceil, as the official percentile)
    assert sum(int(m.sum()) for m in masks) == 3
    assert all(m.all() for m in global_magnitude_masks([first, second], 0.0))
    masks = global_magnitude_masks([torch.zeros(4, 5)], 0.9)  # all tied: still exactly ceil(20 * 0.1) = 2 kept
    assert masks[0].reshape(-1).tolist() == [True, True] + [False] * 18


def test_prune_global_magnitude_zeroes_conv_and_linear_weights_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = prune_global_magnitude(model, 0.8)
    total = model[0].weight.numel() + model[3].weight.numel()
    zeros = int((model[0].weight == 0).sum() + (model[3].weight == 0).sum())
    assert zeros == total - math.ceil(total * 0.2) and sum(int(m.sum()) for m in masks) == math.ceil(total * 0.2)
    for name in ("0.bias", "1.weight", "1.bias", "3.bias", "1.running_mean", "1.running_var"):
        assert torch.equal(model.state_dict()[name], before[name]), name
    kept = model[3].weight != 0
    assert torch.equal(model[3].weight[kept], before["3.weight"][kept])


def test_batchnorm_retuning_changes_only_the_running_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    model[1].running_mean.fill_(5.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = torch.randn(6, 1, 6, 6)
    assert retune_batchnorm(model, [batch, batch + 1.0], num_batches=1) == 1
    after = model.state_dict()
    for name, value in before.items():
        if name.startswith("1.running") or name == "1.num_batches_tracked":
            continue
        assert torch.equal(after[name], value), name  # weights, biases, BN affine parameters untouched
    features = model[0](batch)
    # reset (mean 0, var 1), then one update with momentum 0.1 from the first batch only
    torch.testing.assert_close(model[1].running_mean, 0.1 * features.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(model[1].running_var, 0.9 + 0.1 * features.var(dim=(0, 2, 3), unbiased=True))
    assert int(model[1].num_batches_tracked) == 1 and not model.training and model[1].momentum == 0.1


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan"), "0.9", None])
def test_bad_sparsity_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"sparsity must be a .*\[0, 1\)"):
        check_sparsity(bad)


def test_bad_step_and_callback_settings_are_clear_errors():
    """The step's knobs are typed by CrAMKnobs in the config check (BAD_STEP_KNOBS below); the step and the callback
    also refuse bad values when built by hand."""
    model = tiny_model()
    with pytest.raises(ValueError, match=r"CrAM needs rho >= 0"):
        CrAMStep(torch.optim.SGD(model.parameters(), lr=0.1), rho=-1.0, sparsities=[0.5])
    with pytest.raises(ValueError, match=r"one_shot_pruning\.sparsities\[0\] must be a fraction"):
        OneShotPruningCallback(sparsities=[90])
    with pytest.raises(ValueError, match=r"non-empty list"):
        OneShotPruningCallback(sparsities=[])


def test_one_shot_test_at_zero_sparsity_without_retuning_is_the_dense_accuracy():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    net.eval()
    inputs, targets = torch.randn(30, 4), torch.randint(0, 3, (30,))
    dense = float((net(inputs).argmax(1) == targets).float().mean())

    def batches():
        return [(inputs[:15], targets[:15], None), (inputs[15:], targets[15:], None)]

    metrics = OneShotPruningCallback(sparsities=[0.0, 0.9], bn_batches=2).measure(net, batches, batches)
    assert metrics["test/acc_pruned_nobnt_s0"] == pytest.approx(dense)
    assert metrics["prune/sparsity_s90"] == pytest.approx(1 - math.ceil(56 * 0.1) / 56)
    assert net[1].weight.ne(0).all()  # the trained network itself is not pruned


def test_smoke_preset_runs_and_records_the_pruned_accuracies(tmp_path):
    record = run(compose_config(["+repro=cram_smoke"], tmp_path))
    assert record["status"] == "finished", record["error"]
    final = record["metrics"]["final"]
    for tag in ("s50", "s90"):
        assert 0.0 <= final[f"test/acc_pruned_{tag}"] <= 1.0
        assert 0.0 <= final[f"test/acc_pruned_nobnt_{tag}"] <= 1.0
    assert final["prune/sparsity_s90"] == pytest.approx(0.9, abs=1e-3)
    assert record["config"]["optimizer"]["step"] == "reproductions.cram.step:build_cram_step"


# ---- DDP: two gloo ranks on halves of a batch take the single-process step on the whole batch ----------------
WORLD_SIZE, PER_DEVICE = 2, 6


def ddp_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def ddp_batch():
    generator = torch.Generator().manual_seed(1)
    n = WORLD_SIZE * PER_DEVICE
    return (
        torch.randn(n, 4, generator=generator, dtype=torch.float64),
        torch.randint(0, 3, (n,), generator=generator),
        torch.arange(n),
    )


def ddp_cram_step(model: nn.Module) -> CrAMStep:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    return CrAMStep(optimizer, rho=0.5, sparsities=[0.6], plus=True, sparse_grad=True)


def ddp_rank(rank: int, init_file: str, out_dir: str) -> None:
    from pathlib import Path

    import torch.distributed as dist
    from helpers.gloo import end_process_group
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    inputs, targets, indices = ddp_batch()
    shard = slice(rank * PER_DEVICE, (rank + 1) * PER_DEVICE)
    model = DistributedDataParallel(ddp_mlp())
    ddp_cram_step(model).training_step(LocalBackend(model), (inputs[shard], targets[shard], indices[shard]), epoch=0)
    torch.save([p.detach().clone() for p in model.module.parameters()], Path(out_dir) / f"rank{rank}.pt")
    end_process_group()


def test_cram_step_under_ddp_equals_the_single_process_step_on_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(ddp_rank, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    model = ddp_mlp()
    ddp_cram_step(model).training_step(LocalBackend(model), ddp_batch(), epoch=0)
    for rank_params in ranks:
        for got, expected in zip(rank_params, model.parameters(), strict=True):
            torch.testing.assert_close(got, expected.detach(), rtol=1e-12, atol=1e-12)


BAD_STEP_KNOBS = [
    (["+repro=cram_smoke", "optimizer.sparsities=[0.5,1.2]"], "optimizer.sparsities[1]: must be < 1, got 1.2"),
    (["+repro=cram_smoke", "optimizer.sparsities=[]"], "optimizer.sparsities: has 0 items, needs 1"),
    (["+repro=cram_smoke", "optimizer.sparsities=0.9"], "optimizer.sparsities: 0.9 is not a list"),
    (["+repro=cram_smoke", "optimizer.rho=null"], "optimizer.rho: None is not a number"),
]


@pytest.mark.parametrize("overrides, words", BAD_STEP_KNOBS)
def test_bad_step_knobs_stop_the_config_check_in_one_line(overrides, words):
    """The step builder's own checks run in the config check (step_config), before the run has a folder."""
    error = str(config_check_error(overrides))
    assert words in error and "\n" not in error
