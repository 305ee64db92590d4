"""Every landscape figure of one loaded run: slices, Hessian top eigenvalue, adaptive sharpness."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from optrepro.landscape.directions import random_direction
from optrepro.landscape.hessian import top_hessian_eigenvalue
from optrepro.landscape.run_loader import LoadedRun
from optrepro.landscape.sharpness import adaptive_sharpness
from optrepro.landscape.slices import loss_rise, slice_1d, slice_2d
from optrepro.landscape.subset import subset_loss


@dataclass(frozen=True)
class LandscapeSettings:
    """What was measured and how; stored with the results so figures are only compared at equal settings."""

    samples: int = 500
    points: int = 21            # 1-D grid points on [-span, span]
    points_2d: int = 11         # 2-D grid points per axis (0: no 2-D slice)
    span: float = 1.0
    directions: int = 2         # 1-D slices, each along its own random direction
    rise_at: float = 0.5        # loss_rise_1d is read at +-rise_at
    hessian_iterations: int = 20
    rho: float = 0.005          # adaptive-sharpness l-inf radius, relative to |w|
    ascent_steps: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.points < 3 or self.points_2d < 0 or self.points_2d in (1, 2) or self.span <= 0 or self.directions < 1:
            raise ValueError(f"landscape settings need points >= 3, points_2d 0 or >= 3, span > 0 and directions >= 1; got {self}")
        if not 0 < self.rise_at <= self.span:
            raise ValueError(f"rise_at={self.rise_at} must lie in (0, span={self.span}]")


def grid(points: int, span: float) -> list[float]:
    return torch.linspace(-span, span, points, dtype=torch.float64).tolist()


def measure(run: LoadedRun, settings: LandscapeSettings) -> dict[str, Any]:
    """The record's `extra.landscape` block: settings, slice data and the scalar figures (under `metrics`)."""
    model, subset = run.model, run.subset
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    weights = [p.detach() for p in params]
    generator = torch.Generator().manual_seed(settings.seed)
    directions = [random_direction(weights, generator) for _ in range(settings.directions)]
    slices = [slice_1d(model, subset, d, grid(settings.points, settings.span)) for d in directions]
    plane = None
    if settings.points_2d:
        second = random_direction(weights, generator)
        plane = slice_2d(model, subset, (directions[0], second), grid(settings.points_2d, settings.span))
    loss_fn = lambda: subset_loss(model, subset)
    eig = top_hessian_eigenvalue(loss_fn, params, iterations=settings.hessian_iterations, generator=generator)
    sharp = adaptive_sharpness(loss_fn, params, rho=settings.rho, steps=settings.ascent_steps)
    rises = [loss_rise(s, settings.rise_at) for s in slices]
    metrics = {
        "landscape/loss_at_center": sharp.base_loss,
        "landscape/loss_rise_1d": sum(rises) / len(rises),
        "landscape/hessian_max_eig": eig.eigenvalue,
        "landscape/adaptive_sharpness": sharp.value,
    }
    return {
        "settings": asdict(settings),
        "samples_used": len(subset),
        "metrics": metrics,
        "loss_rise_1d_per_direction": rises,
        "hessian": {"iterations": eig.iterations, "converged": eig.converged},
        "slice_1d": slices,
        "slice_2d": plane,
    }
