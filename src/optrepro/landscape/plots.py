"""PNG figures of the slices: the 1-D loss/accuracy curves and the 2-D loss contour."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_1d(slices: list[dict], title: str, path: Path) -> Path:
    """Loss (left axis, solid) and accuracy (right axis, dashed) along each filter-normalized direction."""
    fig, loss_axis = plt.subplots(figsize=(5, 3.6))
    acc_axis = loss_axis.twinx()
    for index, slice_ in enumerate(slices):
        loss_axis.plot(slice_["alphas"], slice_["loss"], color=f"C{index}", label=f"direction {index}")
        acc_axis.plot(slice_["alphas"], [100 * a for a in slice_["acc"]], color=f"C{index}", linestyle="--")
    loss_axis.set_xlabel("step along the filter-normalized direction")
    loss_axis.set_ylabel("loss (solid)")
    acc_axis.set_ylabel("accuracy % (dashed)")
    loss_axis.set_title(title, fontsize=8)
    loss_axis.legend(fontsize=7, loc="upper center")
    return _save(fig, path)


def plot_2d(slice_: dict, title: str, path: Path, *, depth: float = 5.0) -> Path:
    """Contour lines of the loss over the plane of two filter-normalized directions, 20 levels from the lowest
    loss up to `depth` above it (as the paper's contours, which clip the high walls far from the minimum)."""
    fig, axis = plt.subplots(figsize=(4.4, 4))
    alphas = slice_["alphas"]
    # loss[i][j] is at (a_i, b_j): transpose so x runs along the first direction.
    grid = [list(row) for row in zip(*slice_["loss"])]
    low = min(min(row) for row in grid)
    levels = [low + depth * (k + 1) / 20 for k in range(20)]
    contours = axis.contour(alphas, alphas, grid, levels=levels, cmap="viridis")
    axis.clabel(contours, fontsize=6, fmt="%.2f")
    axis.plot([0], [0], marker="*", color="red")
    axis.set_xlabel("direction 1")
    axis.set_ylabel("direction 2")
    axis.set_title(title, fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
