"""Grams (reproductions/grams): the step against hand computations (the sign-flip case included: the direction is
sign(g) * |m|, so Grams moves opposite to Adam where the gradient turns against the momentum, and C-AdamW not at
all), the shared Adam skeleton against torch's AdamW, a zero gradient giving no Grams step, and the loss-AUC
metric."""

from __future__ import annotations

import pytest
import torch

from reproductions.grams.callback import loss_auc
from reproductions.grams.optimizer import AdamHF, CautiousAdamW, Grams


def scalar_steps(cls, grads, **kwargs) -> list[float]:
    """The change of one float64 scalar at each step, from 0."""
    param = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = cls([param], lr=1e-3, **kwargs)
    changes = []
    for g in grads:
        param.grad = torch.tensor([g], dtype=torch.float64)
        before = float(param.detach())
        optimizer.step()
        changes.append(float(param.detach()) - before)
    return changes


def test_two_steps_by_hand_with_the_sign_flip():
    """lr 1e-3, betas (0.9, 0.999), eps 1e-6 (on sqrt(v)). t=1, g=1: m=0.1, v=1e-3, s = 1e-3 sqrt(1e-3)/0.1;
    step -s m / (sqrt(v) + eps) = -9.99968e-4. t=2, g=-0.1: m=0.08, v=0.001009, s = 1e-3 sqrt(1-0.999^2)/(1-0.9^2);
    Adam: -s 0.08 / (sqrt(0.001009) + 1e-6) = -5.9263e-4; Grams: sign(-0.1) |0.08| -> +5.9263e-4."""
    s1 = 1e-3 * (1 - 0.999) ** 0.5 / (1 - 0.9)
    first = -s1 * 0.1 / (0.001**0.5 + 1e-6)
    s2 = 1e-3 * (1 - 0.999**2) ** 0.5 / (1 - 0.9**2)
    second = -s2 * 0.08 / ((0.999 * 0.001 + 0.001 * 0.01) ** 0.5 + 1e-6)
    assert first == pytest.approx(-9.99968e-4, rel=1e-5) and second == pytest.approx(-5.9263e-4, rel=1e-4)
    assert scalar_steps(AdamHF, [1.0, -0.1]) == pytest.approx([first, second], rel=1e-12)
    assert scalar_steps(Grams, [1.0, -0.1]) == pytest.approx([first, -second], rel=1e-12)
    # C-AdamW: mask 1 at t=1, scaled by n / (active + 1) = 1/2 on a scalar; mask 0 at t=2 (m g < 0): no step
    assert scalar_steps(CautiousAdamW, [1.0, -0.1]) == pytest.approx([first / 2, 0.0], rel=1e-12, abs=0)


def test_directions_on_a_vector():
    """m = (0.1, -0.2, 0.3, 0) after one step of g = (1, -2, 3, 0) (beta1 0.9); then g = (1, 1, -1, 0):
    Grams' direction is sign(g) |m_2| with m_2 = 0.9 m + 0.1 g; C-AdamW keeps the agreeing coordinates only."""
    m2 = torch.tensor([0.9 * 0.1 + 0.1, 0.9 * -0.2 + 0.1, 0.9 * 0.3 - 0.1, 0.0], dtype=torch.float64)
    g2 = torch.tensor([1.0, 1.0, -1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(Grams.direction(None, m2, g2), torch.tensor([0.19, 0.08, -0.17, 0.0], dtype=torch.float64))
    mask = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # only the first agrees (m g > 0)
    assert torch.allclose(CautiousAdamW.direction(None, m2, g2), m2 * mask * 4 / 2)


def test_zero_gradient_gives_no_grams_step_and_weight_decay_is_decoupled_first():
    assert scalar_steps(Grams, [1.0, 0.0])[1] == 0.0  # sign(0) = 0, whatever the momentum
    param = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    optimizer = Grams([param], lr=0.1, weight_decay=0.5)
    param.grad = torch.tensor([0.0], dtype=torch.float64)
    optimizer.step()
    assert float(param.detach()) == pytest.approx(2.0 * (1 - 0.05))


def test_adam_skeleton_matches_torch_adamw_up_to_the_eps_convention():
    """With eps = 0 the Hugging Face and torch conventions coincide: AdamHF is torch's AdamW step for step."""
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(40, generator=gen, dtype=torch.float64)
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    a = AdamHF([ours], lr=0.01, betas=(0.9, 0.99), eps=0.0, weight_decay=0.1)
    b = torch.optim.AdamW([reference], lr=0.01, betas=(0.9, 0.99), eps=0.0, weight_decay=0.1)
    for _ in range(5):
        grad = torch.randn(40, generator=gen, dtype=torch.float64)
        ours.grad, reference.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    assert torch.allclose(ours, reference, rtol=0, atol=1e-12)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="betas must lie in"):
        Grams([torch.nn.Parameter(torch.zeros(1))], betas=(0.9, 1.0))


def test_loss_auc_is_the_mean_epoch_loss():
    assert loss_auc([{"train/loss": 1.0}, {"train/loss": 0.5}, {"train/loss": 0.3}]) == pytest.approx(0.6)
