"""``optimizer.step: reproductions.directional_sharpness.step:build_clipped_step``: coordinate-wise clipping of the
gradient (clipping.py) before any base optimizer's update.

``optimizer.clip_fraction`` is k, the fraction of coordinates clipped (0 = the plain base optimizer). With SGD the
step is the paper's clipped SGD. With Adam both moments see the clipped gradient; the official pseudo-update feeds
the unclipped one to the second moment (README: deviations). ``optimizer=sgd_clip`` and ``optimizer=adam_clip``
(configs/optimizer here) are SGD and Adam with this step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from omegaconf import DictConfig
from torch import Tensor
from torch.optim import Optimizer

from optrepro.config_schema import Fraction, OpenSection, check_section
from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import base_optimizer_factory, parameter_groups
from optrepro.optim.standard import StandardStep
from optrepro.optim.wrapper import BaseOptimizerWrapper
from reproductions.directional_sharpness.clipping import clip_top_coordinates_


class CoordinateClip(BaseOptimizerWrapper):
    """The base optimizer, stepped on gradients clipped by clip_top_coordinates_ over all its parameters.

    The unclipped gradients are put back after the update, so observers of `.grad` (the directional sharpness
    callback's pseudo-optimizers) see the loss's gradient, whatever the training step did with it."""

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict], base_optimizer: Callable[..., Optimizer], *, fraction: float
    ) -> None:
        if not 0.0 <= fraction < 1.0:  # direct use; a config's clip_fraction is checked by ClipKnobs first
            raise ValueError(f"fraction must be in [0, 1) (1 would clip every coordinate to 0), got {fraction}")
        self.fraction = float(fraction)
        super().__init__(params, base_optimizer, defaults={})

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        raw = [g.clone() for g in grads]
        if grads:
            clip_top_coordinates_(grads, self.fraction)
        loss = self.base_optimizer.step(closure)
        for grad, unclipped in zip(grads, raw):
            grad.copy_(unclipped)
        return loss


class ClipKnobs(OpenSection):
    """The optimizer key this step reads beside the base's (values: configs/optimizer/{sgd,adam}_clip.yaml, read as
    given; with another base give +optimizer.clip_fraction)."""

    clip_fraction: Fraction  # k, the fraction of coordinates clipped; 1 would clip every one to the threshold 0


def validate(cfg: DictConfig) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) with the whole run config."""
    check_section(cfg, "optimizer", ClipKnobs)
    if cfg.optimizer.get("orthogonal_grad"):  # typed by the shared schema; this step has no orthogonal variant
        raise InvalidConfigError(
            "optimizer.orthogonal_grad",
            "not available with coordinate-wise clipping",
            "set optimizer.orthogonal_grad=false",
        )


def build_clipped_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer`` node: ``base`` (Hydra partial), ``clip_fraction``, ``no_decay_norm_and_bias``."""
    groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
    optimizer = CoordinateClip(groups, base_optimizer_factory(cfg), fraction=float(cfg.clip_fraction))
    return optimizer, StandardStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


build_clipped_step.validate = validate
