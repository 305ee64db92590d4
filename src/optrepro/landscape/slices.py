"""1-D and 2-D slices of the loss around trained weights: L(w + a d) and L(w + a d1 + b d2) on a grid."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from optrepro.landscape.subset import EvalSubset, loss_and_accuracy


@contextmanager
def displaced(model: nn.Module) -> Iterator[callable]:
    """Yields `move(coefficients, directions)`, which sets params = w + sum c_i d_i; restores w on exit."""
    params = list(model.parameters())
    center = [p.detach().clone() for p in params]

    @torch.no_grad()
    def move(coefficients: Sequence[float], directions: Sequence[list[Tensor]]) -> None:
        for index, (p, w) in enumerate(zip(params, center)):
            p.copy_(w)
            for c, direction in zip(coefficients, directions):
                p.add_(direction[index], alpha=float(c))

    try:
        yield move
    finally:
        with torch.no_grad():
            for p, w in zip(params, center):
                p.copy_(w)


def slice_1d(
    model: nn.Module, subset: EvalSubset, direction: list[Tensor], alphas: Sequence[float]
) -> dict[str, list[float]]:
    """Loss and accuracy at w + alpha * direction for every alpha; the model's weights are unchanged after."""
    losses, accuracies = [], []
    with displaced(model) as move:
        for alpha in alphas:
            move([alpha], [direction])
            loss, acc = loss_and_accuracy(model, subset)
            losses.append(loss)
            accuracies.append(acc)
    return {"alphas": [float(a) for a in alphas], "loss": losses, "acc": accuracies}


def slice_2d(
    model: nn.Module,
    subset: EvalSubset,
    directions: tuple[list[Tensor], list[Tensor]],
    alphas: Sequence[float],
) -> dict[str, list]:
    """Loss and accuracy on the grid w + a * d1 + b * d2 (a, b in `alphas`); loss[i][j] is at (a_i, b_j)."""
    losses = [[0.0] * len(alphas) for _ in alphas]
    accuracies = [[0.0] * len(alphas) for _ in alphas]
    with displaced(model) as move:
        for i, a in enumerate(alphas):
            for j, b in enumerate(alphas):
                move([a, b], list(directions))
                losses[i][j], accuracies[i][j] = loss_and_accuracy(model, subset)
    return {"alphas": [float(a) for a in alphas], "loss": losses, "acc": accuracies}


def loss_rise(slice_: dict[str, list[float]], at: float) -> float:
    """Mean of L(w + at d) and L(w - at d) minus L(w), read off a 1-D slice by linear interpolation."""
    alphas, losses = slice_["alphas"], slice_["loss"]
    if not (min(alphas) <= -at and at <= max(alphas) and min(alphas) <= 0.0 <= max(alphas)):
        raise ValueError(f"the slice spans [{min(alphas)}, {max(alphas)}], which does not contain -{at}, 0 and {at}")
    values = torch.tensor(losses, dtype=torch.float64)
    grid = torch.tensor(alphas, dtype=torch.float64)

    def at_alpha(x: float) -> float:
        return float(_interp(torch.tensor([x], dtype=torch.float64), grid, values)[0])

    return (at_alpha(at) + at_alpha(-at)) / 2 - at_alpha(0.0)


def _interp(x: Tensor, grid: Tensor, values: Tensor) -> Tensor:
    index = torch.searchsorted(grid, x).clamp(1, len(grid) - 1)
    left, right = grid[index - 1], grid[index]
    weight = (x - left) / (right - left)
    return values[index - 1] * (1 - weight) + values[index] * weight
