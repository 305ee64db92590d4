"""TwoMoonsMarginCallback: how far a 2-D classifier's decision boundary lies from the data; preset node
``callbacks.two_moons_margin: {_target_: reproductions.gradient_starvation.two_moons_margin.TwoMoonsMarginCallback}``.

Gradient Starvation (Pezeshki et al., NeurIPS 2021) shows on the separable two-moons data that cross-entropy
draws an almost straight boundary through the narrow gap along the one linearly separating coordinate (small
margin, the moon shape is "starved"), while Spectral Decoupling bends the boundary around the moons (larger
margin). Three numbers measure this at the end of training and are added to the last history row:

* ``train/input_margin`` and ``test/input_margin``: min over the points of the signed Euclidean distance from the
  point to the decision boundary in input space (+ when the point is classified right, - when wrong). The
  boundary is located on a ``GRID`` x ``GRID`` grid over the points' bounding box padded by ``PAD``: the midpoints
  between neighbouring grid nodes with different predicted classes. Resolution error <= half a grid step
  (about 0.01 on the two-moons box). NaN when the grid shows no boundary.
* ``test/shift_acc``: accuracy on the test points each moved ``SHIFT`` along the input coordinate that separates
  the class means most (the "easy" feature), towards the other class's mean (from the training set). A
  boundary that hugs the gap along that coordinate loses the points that cross it; one that also uses the
  other coordinate keeps them.

Inputs must be 2-D vectors. The values are measured on the final weights, in ``on_train_end``; the fields reach
``record.json`` through ``module.history`` (the pattern of reproductions.lion_k.weight_bound).
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

TRAIN_MARGIN_KEY = "train/input_margin"
TEST_MARGIN_KEY = "test/input_margin"
SHIFT_ACC_KEY = "test/shift_acc"
GRID = 401
PAD = 0.5
SHIFT = 0.5


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch: int = 65536) -> Tensor:
    """Predicted classes of the rows of x (in the model's dtype and device)."""
    param = next(model.parameters())
    out = [
        model(x[i : i + batch].to(device=param.device, dtype=param.dtype)).argmax(dim=-1).cpu()
        for i in range(0, len(x), batch)
    ]
    return torch.cat(out)


def boundary_points(model: nn.Module, lo: Tensor, hi: Tensor, grid: int = GRID) -> Tensor:
    """(M, 2) midpoints between neighbouring grid nodes of the box [lo, hi] that the model labels differently."""
    a = torch.linspace(float(lo[0]), float(hi[0]), grid, dtype=torch.float64)
    b = torch.linspace(float(lo[1]), float(hi[1]), grid, dtype=torch.float64)
    ga, gb = torch.meshgrid(a, b, indexing="ij")
    nodes = torch.stack([ga.flatten(), gb.flatten()], dim=1)
    labels = predict(model, nodes).reshape(grid, grid)
    pts = nodes.reshape(grid, grid, 2)
    along0 = labels[1:, :] != labels[:-1, :]
    along1 = labels[:, 1:] != labels[:, :-1]
    mids0 = 0.5 * (pts[1:, :][along0] + pts[:-1, :][along0])
    mids1 = 0.5 * (pts[:, 1:][along1] + pts[:, :-1][along1])
    return torch.cat([mids0, mids1])


def signed_margins(model: nn.Module, x: Tensor, y: Tensor, boundary: Tensor) -> Tensor:
    """Per point: distance to the nearest boundary point, negated where the model gets the point wrong."""
    if len(boundary) == 0:
        return torch.full((len(x),), math.nan, dtype=torch.float64)
    dist = torch.cdist(x.double().cpu(), boundary).min(dim=1).values
    correct = predict(model, x) == y.cpu()
    return torch.where(correct, dist, -dist)


def easy_direction(x_train: Tensor, y_train: Tensor) -> tuple[int, Tensor]:
    """(coordinate, per-class sign): the coordinate along which the two class means differ most, and for each
    class the sign that moves its points towards the other class's mean."""
    mean0, mean1 = x_train[y_train == 0].double().mean(0), x_train[y_train == 1].double().mean(0)
    gap = mean1 - mean0
    coord = int(gap.abs().argmax())
    toward = torch.tensor([1.0, -1.0], dtype=torch.float64) * torch.sign(gap[coord])  # class 0 -> +gap, class 1 -> -gap
    return coord, toward


def two_moons_margin_metrics(
    model: nn.Module,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    *,
    grid: int = GRID,
    pad: float = PAD,
    shift: float = SHIFT,
) -> dict[str, float]:
    """The three metrics of the module docstring for a binary classifier on 2-D inputs."""
    if x_train.dim() != 2 or x_train.shape[1] != 2:
        raise ValueError(f"the two-moons margin callback needs 2-D vector inputs, got shape {tuple(x_train.shape[1:])}")
    both = torch.cat([x_train, x_test]).double().cpu()
    boundary = boundary_points(model, both.min(0).values - pad, both.max(0).values + pad, grid)
    coord, toward = easy_direction(x_train.cpu(), y_train.cpu())
    shifted = x_test.double().cpu().clone()
    shifted[:, coord] += shift * toward[y_test.cpu().long()]
    shift_acc = (predict(model, shifted) == y_test.cpu()).double().mean()
    return {
        TRAIN_MARGIN_KEY: float(signed_margins(model, x_train, y_train, boundary).min()),
        TEST_MARGIN_KEY: float(signed_margins(model, x_test, y_test, boundary).min()),
        SHIFT_ACC_KEY: float(shift_acc),
    }


class TwoMoonsMarginCallback(Callback):
    """Adds :func:`two_moons_margin_metrics` of the final weights to the module's newest history row."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", None)
        dm = getattr(trainer, "datamodule", None)
        if not history or dm is None or TEST_MARGIN_KEY in history[-1]:
            return
        to_input = dm.to_input  # the loader's standardization: the model sees what it was trained on
        net = getattr(pl_module, "net", pl_module)
        was_training = net.training
        net.eval()
        try:
            metrics = two_moons_margin_metrics(net, to_input(dm.x_train), dm.y_train, to_input(dm.x_test), dm.y_test)
        finally:
            net.train(was_training)
        pl_module.add_to_last_history_row(metrics)
