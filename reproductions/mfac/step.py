"""``optimizer.step: reproductions.mfac.step:build_mfac_step``: dynamic M-FAC over the configured base optimizer.

``optimizer=mfac`` is the official setting (base SGD, no momentum); any other base: ``optimizer=<base>
optimizer.step=reproductions.mfac.step:build_mfac_step`` with ``+optimizer.ngrads``, ``+optimizer.damp`` and
``+optimizer.window_dtype``. Knobs (MFACKnobs): ``ngrads`` (m, the window), ``damp`` (lambda, added to the Fisher),
``window_dtype`` (float32 | float64). The base's ``weight_decay`` is moved into the gradient before the window
(coupled, as officially); ``no_decay_norm_and_bias`` groups keep 0.
"""

from __future__ import annotations

import functools
from typing import Literal

from omegaconf import DictConfig

from optrepro.config_schema import OpenSection, PosFloat, PosInt, check_section
from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import base_optimizer_factory, parameter_groups
from optrepro.optim.standard import StandardStep
from reproductions.mfac.optimizer import DTYPES, MFAC

WINDOW_DTYPES = tuple(DTYPES)


class MFACKnobs(OpenSection):
    """The optimizer keys this step reads beside ``base`` (values: configs/optimizer/mfac.yaml, read as given; with
    another base give all three)."""

    ngrads: PosInt  # m, the window of gradients
    damp: PosFloat  # lambda in F = lambda I + G^T G / m
    window_dtype: Literal[WINDOW_DTYPES]


def validate(cfg: DictConfig) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) with the whole run config."""
    check_section(cfg, "optimizer", MFACKnobs)
    if cfg.optimizer.get("orthogonal_grad"):  # typed by the shared schema; this step has no orthogonal variant
        raise InvalidConfigError(
            "optimizer.orthogonal_grad", "not available with M-FAC", "set optimizer.orthogonal_grad=false"
        )


def build_mfac_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer`` node: ``base`` (Hydra partial; its weight_decay enters the window), the MFACKnobs (checked by
    validate first), ``no_decay_norm_and_bias``."""
    decay = float(cfg.base.get("weight_decay") or 0.0)
    groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
    for group in groups:
        group["mfac_decay"] = 0.0 if group.pop("weight_decay", None) == 0.0 else decay
    base = functools.partial(base_optimizer_factory(cfg), weight_decay=0.0)
    optimizer = MFAC(
        groups, base, ngrads=cfg.ngrads, damp=float(cfg.damp), decay=decay, window_dtype=str(cfg.window_dtype)
    )
    return optimizer, StandardStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


build_mfac_step.validate = validate
