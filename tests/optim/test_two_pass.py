"""TwoPassStep and StandardStep driven through a LocalBackend, against closed forms."""

from __future__ import annotations

import copy
import functools
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from sam_problems import (
    flat_params,
    half_mse,
    linear_model,
    linear_regression_batch,
    quadratic_terms,
    regression_backend,
    sam_gradient,
)
from torch import nn

from optrepro.optim.backend import LocalBackend
from optrepro.optim.sam import SAM
from optrepro.optim.standard import StandardStep
from optrepro.optim.two_pass import TwoPassStep

RHO, LR, WD = 0.2, 0.1, 0.01


def sam_sgd(model: nn.Module, *, rho: float = RHO, momentum: float = 0.0, weight_decay: float = WD) -> SAM:
    base = functools.partial(torch.optim.SGD, lr=LR, momentum=momentum, weight_decay=weight_decay)
    return SAM(model.parameters(), base, rho=rho)


@pytest.mark.parametrize("accumulate", [1, 2, 4])
def test_sam_step_matches_closed_form_for_any_accumulation(accumulate):
    """Accumulation perturbs once with the full-batch gradient, so it is the large-batch step."""
    batch = linear_regression_batch(n=8)
    model = linear_model()
    w0 = flat_params(model)
    TwoPassStep(sam_sgd(model), accumulate=accumulate).training_step(regression_backend(model), batch, epoch=0)
    A, b = quadratic_terms(batch[0], batch[1])
    expected = w0 - LR * (sam_gradient(w0, A, b, rho=RHO) + WD * w0)
    torch.testing.assert_close(flat_params(model), expected, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("accumulate", [1, 2, 4])
def test_standard_step_matches_full_batch_gradient_step(accumulate):
    batch = linear_regression_batch(n=8)
    model = linear_model()
    w0 = flat_params(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
    StandardStep(optimizer, accumulate=accumulate).training_step(regression_backend(model), batch, epoch=0)
    A, b = quadratic_terms(batch[0], batch[1])
    torch.testing.assert_close(flat_params(model), w0 - LR * (A @ w0 - b + WD * w0), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("m", "accumulate"), [(8, 1), (4, 1), (2, 1), (2, 2), (4, 2)])
def test_m_sharpness_averages_per_sub_batch_sam_gradients(m, accumulate):
    batch = linear_regression_batch(n=8)
    model = linear_model()
    w0 = flat_params(model)
    strategy = TwoPassStep(sam_sgd(model), accumulate=accumulate, m_sharpness=m)
    strategy.training_step(regression_backend(model), batch, epoch=0)
    sub_gradients = [
        sam_gradient(w0, *quadratic_terms(x, y), rho=RHO) for x, y in zip(batch[0].split(m), batch[1].split(m))
    ]
    expected = w0 - LR * (torch.stack(sub_gradients).mean(0) + WD * w0)
    torch.testing.assert_close(flat_params(model), expected, rtol=1e-13, atol=1e-13)


def test_m_sharpness_with_m_equal_to_batch_is_plain_sam():
    batch = linear_regression_batch(n=8)
    plain, sharp = linear_model(), linear_model()
    TwoPassStep(sam_sgd(plain)).training_step(regression_backend(plain), batch, epoch=0)
    TwoPassStep(sam_sgd(sharp), m_sharpness=8).training_step(regression_backend(sharp), batch, epoch=0)
    assert torch.equal(flat_params(plain), flat_params(sharp))


@pytest.mark.parametrize(
    ("kwargs", "batch_size", "message"),
    [
        ({"m_sharpness": 3}, 8, "m_sharpness=3 must divide the per-device micro-batch size 8"),
        ({"m_sharpness": 4, "accumulate": 4}, 8, "must divide the per-device micro-batch size 2"),
        ({"accumulate": 9}, 8, "cannot split a batch of 8 samples into 9 micro-batches"),
    ],
)
def test_impossible_splits_are_reported(kwargs, batch_size, message):
    model = linear_model()
    strategy = TwoPassStep(sam_sgd(model), **kwargs)
    with pytest.raises(ValueError, match=message):
        strategy.training_step(regression_backend(model), linear_regression_batch(n=batch_size), epoch=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"perturbation_sync": "sometimes"}, "valid: per_device, global"),
        ({"m_sharpness": 0}, "m_sharpness must be a positive"),
        ({"accumulate": 0}, "accumulate must be >= 1"),
    ],
)
def test_invalid_strategy_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TwoPassStep(sam_sgd(linear_model()), **kwargs)


def test_returns_clean_loss_and_logits():
    batch = linear_regression_batch(n=8)
    model = linear_model()
    clean_logits = model(batch[0]).detach()
    output = TwoPassStep(sam_sgd(model), accumulate=2).training_step(regression_backend(model), batch, epoch=0)
    torch.testing.assert_close(output.logits, clean_logits)
    torch.testing.assert_close(output.loss, half_mse(clean_logits, batch[1]))
    assert output.metrics["perturbed_loss"] > output.loss
    assert not output.loss.requires_grad and not output.logits.requires_grad


# --- BatchNorm statistics -------------------------------------------------------------------------


def bn_model(momentum: float | None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, momentum=momentum), nn.ReLU(), nn.Linear(6, 3)).double()


def classification_batch(n: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return inputs, torch.randint(0, 3, (n,), generator=generator), torch.arange(n)


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize(("accumulate", "m"), [(1, None), (2, None), (1, 4)])
def test_batchnorm_buffers_are_those_of_the_clean_passes(momentum, accumulate, m):
    model = bn_model(momentum)
    reference = copy.deepcopy(model)
    batch = classification_batch()
    pieces = accumulate if m is None else len(batch[1]) // m
    for inputs in batch[0].tensor_split(pieces):
        reference(inputs)  # clean forward passes only
    TwoPassStep(sam_sgd(model), accumulate=accumulate, m_sharpness=m).training_step(LocalBackend(model), batch, epoch=0)
    bn, reference_bn = model[1], reference[1]
    assert bn.num_batches_tracked.item() == pieces
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(bn, name), getattr(reference_bn, name)), name


# --- checkpoints --------------------------------------------------------------------------------------


def test_state_dict_round_trip_resumes_identically():
    batches = [classification_batch(seed=s) for s in range(6)]
    model = bn_model(0.1)
    optimizer = sam_sgd(model, momentum=0.9)
    strategy = TwoPassStep(optimizer)
    backend = LocalBackend(model)
    for batch in batches[:3]:
        strategy.training_step(backend, batch, epoch=0)
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    assert any("momentum_buffer" in s for s in saved_optimizer["state"].values())
    for batch in batches[3:]:
        strategy.training_step(backend, batch, epoch=0)

    resumed = bn_model(0.1)
    resumed.load_state_dict(saved_model)
    resumed_optimizer = sam_sgd(resumed, momentum=0.9)
    resumed_optimizer.load_state_dict(saved_optimizer)
    assert resumed_optimizer.state is resumed_optimizer.base_optimizer.state
    assert resumed_optimizer.param_groups is resumed_optimizer.base_optimizer.param_groups
    resumed_strategy, resumed_backend = TwoPassStep(resumed_optimizer), LocalBackend(resumed)
    for batch in batches[3:]:
        resumed_strategy.training_step(resumed_backend, batch, epoch=0)
    for original, copy_ in zip(model.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(original, copy_)


# --- clipping -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy_name", ["two_pass", "standard"])
def test_clipping_bounds_the_final_gradient(strategy_name):
    batch = linear_regression_batch(n=8)
    model = linear_model()
    w0 = flat_params(model)
    clip = 1e-3
    if strategy_name == "two_pass":
        strategy = TwoPassStep(sam_sgd(model, weight_decay=0.0), grad_clip=clip)
    else:
        strategy = StandardStep(torch.optim.SGD(model.parameters(), lr=LR), grad_clip=clip)
    output = strategy.training_step(regression_backend(model), batch, epoch=0)
    update = w0 - flat_params(model)
    A, b = quadratic_terms(batch[0], batch[1])
    gradient = sam_gradient(w0, A, b, rho=RHO) if strategy_name == "two_pass" else A @ w0 - b
    assert update.norm().item() == pytest.approx(LR * clip, rel=1e-5)  # torch adds 1e-6 to the norm
    torch.testing.assert_close(update / update.norm(), gradient / gradient.norm())
    assert output.metrics["grad_norm"].item() == pytest.approx(gradient.norm().item(), rel=1e-9)


# --- mixed precision ------------------------------------------------------------------------------------


def float32_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def float32_batch(n: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 4, generator=generator)
    return inputs, (inputs[:, 0] > 0).long() + (inputs[:, 1] > 0).long(), torch.arange(n)


def scaled_sam_step(*, autocast_dtype=None, loss_fn=F.cross_entropy, init_scale=2.0**16):
    model = float32_mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    backend = LocalBackend(model, loss_fn=loss_fn, autocast_dtype=autocast_dtype, grad_scaler=scaler)
    optimizer = sam_sgd(model, momentum=0.9)
    return model, scaler, optimizer, TwoPassStep(optimizer, accumulate=2), backend


def test_grad_scaler_step_matches_fp32_step():
    """Power-of-two scaling is exact, so the scaled path must reproduce the fp32 step."""
    batch = float32_batch()
    reference = float32_mlp()
    TwoPassStep(sam_sgd(reference, momentum=0.9), accumulate=2).training_step(LocalBackend(reference), batch, epoch=0)
    model, scaler, _, strategy, backend = scaled_sam_step()
    strategy.training_step(backend, batch, epoch=0)
    torch.testing.assert_close(flat_params(model), flat_params(reference), rtol=1e-6, atol=1e-7)
    assert scaler.get_scale() == 2.0**16


def test_float16_autocast_step_is_close_to_fp32_step():
    batch = float32_batch()
    reference = float32_mlp()
    start = flat_params(reference)
    TwoPassStep(sam_sgd(reference, momentum=0.9), accumulate=2).training_step(LocalBackend(reference), batch, epoch=0)
    model, _, _, strategy, backend = scaled_sam_step(autocast_dtype=torch.float16)
    strategy.training_step(backend, batch, epoch=0)
    reference_update, update = flat_params(reference) - start, flat_params(model) - start
    assert (update - reference_update).norm() < 0.02 * reference_update.norm()


def overflowing_on_call(call_number: int):
    """Cross-entropy that returns inf on its ``call_number``-th call (1 = first clean micro-batch)."""
    calls = {"count": 0}

    def loss(logits, targets):
        calls["count"] += 1
        value = F.cross_entropy(logits, targets)
        return value * float("inf") if calls["count"] == call_number else value

    return loss


@pytest.mark.parametrize(("overflow_call", "perturbs"), [(1, False), (2, False), (3, True), (4, True)])
def test_non_finite_gradients_skip_the_whole_step(overflow_call, perturbs):
    """Calls 1-2 are the clean micro-batches (no perturbation), 3-4 the perturbed ones."""
    model, scaler, optimizer, strategy, backend = scaled_sam_step(loss_fn=overflowing_on_call(overflow_call))
    start = copy.deepcopy(model.state_dict())
    with (
        mock.patch.object(scaler, "update", wraps=scaler.update) as update,
        mock.patch.object(optimizer, "perturb", wraps=optimizer.perturb) as perturb,
        mock.patch.object(optimizer.base_optimizer, "step", wraps=optimizer.base_optimizer.step) as base_step,
    ):
        strategy.training_step(backend, float32_batch(), epoch=0)
    assert update.call_count == 1
    assert perturb.called is perturbs
    assert base_step.call_count == 0
    assert scaler.get_scale() == 2.0**15  # backed off once
    for name, value in model.state_dict().items():
        assert torch.equal(value, start[name]), name
    assert not optimizer.is_perturbed


def test_finite_scaled_step_updates_once_and_keeps_scale():
    model, scaler, optimizer, strategy, backend = scaled_sam_step()
    start = flat_params(model)
    with mock.patch.object(scaler, "update", wraps=scaler.update) as update:
        strategy.training_step(backend, float32_batch(), epoch=0)
    assert update.call_count == 1
    assert scaler.get_scale() == 2.0**16
    assert not torch.equal(flat_params(model), start)


def test_bfloat16_autocast_training_decreases_loss():
    model = float32_mlp()
    backend = LocalBackend(model, autocast_dtype=torch.bfloat16)
    strategy = TwoPassStep(sam_sgd(model, rho=0.05, momentum=0.9, weight_decay=0.0))
    batch = float32_batch(n=64)
    losses = [strategy.training_step(backend, batch, epoch=0).loss.item() for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0]
