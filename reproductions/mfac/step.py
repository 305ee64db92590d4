"""``optimizer.step: reproductions.mfac.step:build_mfac_step``: dynamic M-FAC over the configured base optimizer.

``optimizer=mfac`` is the official setting (base SGD, no momentum); any other base: ``optimizer=<base>
optimizer.step=reproductions.mfac.step:build_mfac_step``. Knobs on the optimizer node: ``ngrads`` (m, the window),
``damp`` (lambda, added to the Fisher), ``window_dtype`` (float32 | float64). The base's ``weight_decay`` is moved
into the gradient before the window (coupled, as officially); ``no_decay_norm_and_bias`` groups keep 0.
"""

from __future__ import annotations

import functools

from omegaconf import DictConfig

from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import base_optimizer_factory, parameter_groups
from optrepro.optim.standard import StandardStep
from reproductions.mfac.optimizer import DTYPES, MFAC


def check_knobs(optimizer_cfg: DictConfig) -> tuple[int, float, str]:
    """The knobs this step reads, checked before any work: (ngrads, damp, window_dtype)."""
    ngrads = optimizer_cfg.get("ngrads")
    if isinstance(ngrads, bool) or not isinstance(ngrads, int) or ngrads < 1:
        raise InvalidConfigError(
            "optimizer.ngrads", f"must be a whole number >= 1 (the window m), got {ngrads!r}", "set optimizer.ngrads=32"
        )
    damp = optimizer_cfg.get("damp")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not damp > 0:
        raise InvalidConfigError(
            "optimizer.damp",
            f"must be a number > 0 (lambda in F = lambda I + G^T G / m), got {damp!r}",
            "set optimizer.damp=1e-5",
        )
    dtype = optimizer_cfg.get("window_dtype", "float32")
    if dtype not in DTYPES:
        raise InvalidConfigError(
            "optimizer.window_dtype", f"{dtype!r} is not a dtype", f"use one of {', '.join(DTYPES)}"
        )
    if optimizer_cfg.get("orthogonal_grad", False):
        raise InvalidConfigError(
            "optimizer.orthogonal_grad", "not available with M-FAC", "set optimizer.orthogonal_grad=false"
        )
    return ngrads, float(damp), dtype


def validate(cfg: DictConfig) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) with the whole run config."""
    check_knobs(cfg.optimizer)


def build_mfac_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer`` node: ``base`` (Hydra partial; its weight_decay enters the window), ``ngrads``, ``damp``,
    ``window_dtype``, ``no_decay_norm_and_bias``."""
    ngrads, damp, dtype = check_knobs(cfg)
    decay = float(cfg.base.get("weight_decay") or 0.0)
    groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
    for group in groups:
        group["mfac_decay"] = 0.0 if group.pop("weight_decay", None) == 0.0 else decay
    base = functools.partial(base_optimizer_factory(cfg), weight_decay=0.0)
    optimizer = MFAC(groups, base, ngrads=ngrads, damp=damp, decay=decay, window_dtype=dtype)
    return optimizer, StandardStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


build_mfac_step.validate = validate
