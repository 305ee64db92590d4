"""Filter normalization, slices, power iteration and adaptive sharpness against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optrepro.landscape.directions import filter_normalize, random_direction
from optrepro.landscape.hessian import top_hessian_eigenvalue
from optrepro.landscape.sharpness import adaptive_sharpness
from optrepro.landscape.slices import loss_rise, slice_1d, slice_2d
from optrepro.landscape.subset import EvalSubset, loss_and_accuracy


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).eval()


def small_subset() -> EvalSubset:
    generator = torch.Generator().manual_seed(1)
    return EvalSubset(
        torch.randn(10, 1, 6, 6, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), batch_size=4
    )


def test_every_filter_of_a_normalized_direction_has_its_weight_filters_norm():
    net = small_net()
    weights = [p.detach() for p in net.parameters()]
    direction = random_direction(weights, torch.Generator().manual_seed(0))
    for d, w in zip(direction, weights):
        if w.dim() <= 1:  # biases and BatchNorm: not perturbed
            assert torch.count_nonzero(d) == 0
        else:
            for d_filter, w_filter in zip(d, w):
                torch.testing.assert_close(d_filter.norm(), w_filter.norm())
    conv_direction = direction[0]
    assert not torch.allclose(
        conv_direction / weights[0], conv_direction[0, 0, 0, 0] / weights[0][0, 0, 0, 0]
    )  # not just a copy of w


def test_filter_normalization_keeps_the_direction_within_each_filter():
    d, w = torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 10.0], [0.0, 2.0]])
    torch.testing.assert_close(filter_normalize([d], [w])[0], torch.tensor([[6.0, 8.0], [2.0, 0.0]]))


def test_filter_normalization_rejects_a_direction_of_another_shape():
    with pytest.raises(ValueError, match="does not match"):
        filter_normalize([torch.zeros(2, 3)], [torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="2 parameters"):
        filter_normalize([torch.zeros(2)], [torch.zeros(2), torch.zeros(2)])


def test_the_1d_slice_at_zero_is_the_models_loss_and_leaves_the_weights_unchanged():
    net, subset = small_net(), small_subset()
    before = [p.detach().clone() for p in net.parameters()]
    loss, acc = loss_and_accuracy(net, subset)
    expected = nn.functional.cross_entropy(net(subset.x), subset.y).item()
    direction = random_direction(before, torch.Generator().manual_seed(0))
    result = slice_1d(net, subset, direction, [-1.0, 0.0, 1.0])
    assert result["loss"][1] == pytest.approx(expected, rel=1e-6) and loss == pytest.approx(expected, rel=1e-6)
    assert result["acc"][1] == acc
    assert result["loss"][0] != pytest.approx(expected)
    for p, w in zip(net.parameters(), before):
        assert torch.equal(p, w)
    plane = slice_2d(net, subset, (direction, direction), [-0.5, 0.0, 0.5])
    assert plane["loss"][1][1] == pytest.approx(expected, rel=1e-6)
    assert plane["loss"][2][0] == pytest.approx(expected, rel=1e-6)  # +0.5 d - 0.5 d = the center
    assert plane["loss"][2][2] == pytest.approx(result["loss"][2], rel=1e-6)  # 0.5 d + 0.5 d = 1.0 d


def test_loss_rise_reads_the_slice_symmetrically():
    slice_ = {"alphas": [-1.0, -0.5, 0.0, 0.5, 1.0], "loss": [9.0, 3.0, 1.0, 5.0, 9.0]}
    assert loss_rise(slice_, 0.5) == pytest.approx(3.0)  # (3 + 5) / 2 - 1
    assert loss_rise(slice_, 0.75) == pytest.approx(5.5)  # (6 + 7) / 2 - 1, interpolated
    with pytest.raises(ValueError, match="does not contain"):
        loss_rise(slice_, 2.0)


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_quadratic():
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator, dtype=torch.float64))
    eigenvalues = torch.tensor([7.0, 3.0, 2.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    hessian = rotation @ torch.diag(eigenvalues) @ rotation.T
    w = torch.randn(6, generator=generator, dtype=torch.float64, requires_grad=True)
    result = top_hessian_eigenvalue(
        lambda: 0.5 * w @ hessian @ w + w.sum(), [w], iterations=200, tolerance=1e-10, generator=generator
    )
    assert result.eigenvalue == pytest.approx(7.0, rel=1e-6)
    assert result.converged


def test_adaptive_sharpness_of_a_linear_loss_is_rho_times_sum_of_abs_a_w():
    a = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    w = torch.tensor([2.0, 1.0, -4.0, 0.0], dtype=torch.float64, requires_grad=True)
    result = adaptive_sharpness(lambda: a @ w, [w], rho=0.1, steps=4)
    # the ball |delta_i| <= 0.1 |w_i|: worst case delta_i = 0.1 |w_i| sign(a_i), rise = 0.1 * (2 + 2 + 2 + 0)
    assert result.value == pytest.approx(0.6, rel=1e-12)
    assert torch.equal(w.detach(), torch.tensor([2.0, 1.0, -4.0, 0.0], dtype=torch.float64))  # restored


def test_adaptive_sharpness_of_a_quadratic_bowl_scales_every_weight_outward():
    c = torch.tensor([1.0, 4.0], dtype=torch.float64)
    w = torch.tensor([1.0, -0.5], dtype=torch.float64, requires_grad=True)

    def loss():
        return 0.5 * (c * w * w).sum()

    result = adaptive_sharpness(loss, [w], rho=0.2, steps=10)
    # worst case w -> 1.2 w: rise = (1.2^2 - 1) * L(w) = 0.44 * 1.0
    assert result.value == pytest.approx(0.44, rel=1e-9)


@pytest.mark.parametrize("kwargs", [{"rho": 0.0}, {"rho": 0.1, "steps": 0}])
def test_adaptive_sharpness_rejects_an_empty_ball_or_no_steps(kwargs):
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="rho > 0 and steps >= 1"):
        adaptive_sharpness(lambda: w.sum(), [w], **kwargs)
