"""``optimizer.step: reproductions.cautious_wd.step:build_cwd_step``: cautious weight decay over the configured base.

Any optimizer config becomes its CWD version with this step: ``optimizer=adamw
optimizer.step=reproductions.cautious_wd.step:build_cwd_step`` (``configs/optimizer/adamw_cwd.yaml`` is that for
AdamW). The base's ``weight_decay`` is the paper's lambda and is applied by the wrapper (optimizer.py), never by the
base; ``no_decay_norm_and_bias`` groups keep lambda = 0. ``optimizer.cwd_mask`` picks the mask (update = CWD;
random, gradient, all = the ablations and the plain decoupled baseline). CWD is decoupled decay whatever the
base's own mode: with SGD or Adam bases lambda becomes a decoupled (cautious) decay, not an L2 term.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from omegaconf import DictConfig, OmegaConf

from optrepro.config_schema import OpenSection, check_section
from optrepro.errors import InvalidConfigError
from optrepro.optim.factory import base_optimizer_factory, parameter_groups
from optrepro.optim.standard import StandardStep
from reproductions.cautious_wd.optimizer import MASKS, CautiousWeightDecay


class CautiousStep(StandardStep):
    """The standard step; its checkpoint state also holds the random mask's generator."""

    def state_dict(self) -> dict:
        return {"cwd_generator": self.optimizer.generator_state()}

    def load_state_dict(self, state: dict) -> None:
        if "cwd_generator" in state:
            self.optimizer.set_generator_state(state["cwd_generator"])


class CWDKnobs(OpenSection):
    """The optimizer keys this step reads beside the base's (the shared schema types those). ``cwd_mask`` defaults
    here, since the step runs on any base whose yaml has no mask (adamw_cwd.yaml states update for its records)."""

    cwd_mask: Literal[MASKS] = "update"


def knobs(optimizer_cfg: DictConfig) -> CWDKnobs:
    """The typed knobs of an optimizer node (the config check has already stopped bad values in one line)."""
    return CWDKnobs.model_validate(OmegaConf.to_container(optimizer_cfg, resolve=True))


def validate(cfg: DictConfig) -> None:
    """Called by the config check (optrepro.config_schema, rule step_config) with the whole run config."""
    check_section(cfg, "optimizer", CWDKnobs)
    if cfg.optimizer.get("orthogonal_grad"):  # typed by the shared schema; this step has no orthogonal variant
        raise InvalidConfigError(
            "optimizer.orthogonal_grad",
            "not available with cautious weight decay",
            "set optimizer.orthogonal_grad=false",
        )


def build_cwd_step(cfg, model, *, num_train_samples, num_classes, accumulate, grad_clip):
    """``optimizer`` node: ``base`` (Hydra partial; its weight_decay is lambda), ``cwd_mask``,
    ``no_decay_norm_and_bias``."""
    mask = knobs(cfg).cwd_mask
    decay = float(cfg.base.get("weight_decay") or 0.0)
    groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
    for group in groups:
        group["cautious_decay"] = 0.0 if group.pop("weight_decay", None) == 0.0 else decay
    base = functools.partial(base_optimizer_factory(cfg), weight_decay=0.0)
    optimizer = CautiousWeightDecay(groups, base, decay=decay, mask=mask, seed=torch.initial_seed())
    return optimizer, CautiousStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


build_cwd_step.validate = validate
