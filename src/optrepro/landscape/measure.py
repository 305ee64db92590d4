"""Every landscape figure of one loaded run: slices, Hessian top eigenvalue, adaptive sharpness."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch

from optrepro.landscape.directions import random_direction
from optrepro.landscape.hessian import top_hessian_eigenvalue
from optrepro.landscape.run_loader import LoadedRun
from optrepro.landscape.settings import LandscapeSettings
from optrepro.landscape.sharpness import adaptive_sharpness
from optrepro.landscape.slices import loss_rise, slice_1d, slice_2d
from optrepro.landscape.subset import subset_loss


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

    def loss_fn():
        return subset_loss(model, subset)

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
