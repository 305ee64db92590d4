"""``optimizer`` config group -> (optimizer, step strategy).

``build_optimizer`` dispatches on ``optimizer_cfg.step``: a name in
:data:`STEP_BUILDERS`, whose entries are ``"module:function"`` strings imported on
use, so a strategy module (SAF, GAM) is only imported by the runs that need it; or,
for a paper that brings its own step, such a ``"module:function"`` string itself
(``reproductions.<paper>.<module>:<function>``). Every step builder has the
signature of :func:`build_standard_step`.

The helpers here (:func:`base_optimizer_factory`, :func:`parameter_groups`) are
shared by all step builders so that weight decay is configured the same way
for every method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import hydra.utils
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim import Optimizer

from optrepro.errors import ConfigError, InvalidConfigError, UnknownChoiceError
from optrepro.optim.backend import StepStrategy
from optrepro.optim.bn import norm_layer_parameters
from optrepro.optim.distributed_shampoo import DistributedShampoo
from optrepro.optim.lion import Lion
from optrepro.optim.sam import SAM
from optrepro.optim.shampoo import Shampoo
from optrepro.optim.standard import StandardStep
from optrepro.optim.two_pass import TwoPassStep
from optrepro.paths import import_reproductions

STEP_BUILDERS: dict[str, str] = {
    "standard": "optrepro.optim.factory:build_standard_step",
    "two_pass": "optrepro.optim.factory:build_two_pass_step",
    # Registered by the SAF/MESA and GAM modules (optim/saf.py, optim/gam.py):
    "trajectory": "optrepro.optim.saf:build_trajectory_step",
    "gam": "optrepro.optim.gam:build_gam_step",
}

PERTURB_CHOICES = ("all", "norm_layers")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")

# Base optimizers whose weight decay mode is known: coupled adds wd * w to the
# gradient (L2), decoupled shrinks the weights directly.
KNOWN_WEIGHT_DECAY_MODES: dict[type[Optimizer], str] = {
    torch.optim.SGD: "coupled",
    torch.optim.Adam: "coupled",
    torch.optim.AdamW: "decoupled",
    Lion: "decoupled",
    Shampoo: "coupled",
    DistributedShampoo: "decoupled",
}

StepBuilder = Callable[..., tuple[Optimizer, StepStrategy]]


def build_optimizer(
    optimizer_cfg: DictConfig | Mapping[str, Any],
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int = 1,
    grad_clip: float | None = None,
) -> tuple[Optimizer, StepStrategy]:
    """Build the optimizer and its step strategy; ``accumulate`` and ``grad_clip`` come from ``cfg.train``."""
    cfg = optimizer_cfg if isinstance(optimizer_cfg, DictConfig) else OmegaConf.create(dict(optimizer_cfg))
    builder = resolve_step_builder(cfg.get("step"))
    return builder(
        cfg,
        model,
        num_train_samples=num_train_samples,
        num_classes=num_classes,
        accumulate=accumulate,
        grad_clip=grad_clip,
    )


def refuse_micro_batches(accumulate: int, step: str) -> None:
    """A step that needs the whole batch at once (curvature, per-example Jacobians, zeroth-order queries, a
    regularizer's second gradient) refuses `train.accumulate` > 1 in one line; its validate(cfg) and its builder
    both call this."""
    if accumulate != 1:
        raise InvalidConfigError(
            "train.accumulate",
            f"{accumulate} micro-batches per step",
            f"the {step} step takes the whole batch at once: set train.accumulate=1",
        )


def validated_on_stand_in(knobs: type | None = None) -> Callable[[StepBuilder], StepBuilder]:
    """A decorator giving `builder` a `validate(cfg)` for the config check (config_schema rule step_config): the
    paper's `knobs` schema (an OpenSection of the optimizer keys its step reads, declared in its folder) checks their
    types and ranges, then the builder runs on a one-weight stand-in model, so its own cross-key checks also stop a
    bad knob in one line before the run has a folder. For builders that draw no random numbers and need nothing of
    the real model."""
    return lambda builder: _with_stand_in_validate(builder, knobs)


def _with_stand_in_validate(builder: StepBuilder, knobs: type | None) -> StepBuilder:
    def validate(cfg) -> None:
        if knobs is not None:
            from optrepro.config_schema import check_section

            check_section(cfg, "optimizer", knobs)
        builder(
            cfg.optimizer,
            nn.Linear(1, 1),
            num_train_samples=1,
            num_classes=1,
            accumulate=int(cfg.train.accumulate),
            grad_clip=cfg.train.grad_clip,
        )

    builder.validate = validate
    return builder


def resolve_step_builder(step: str | None) -> StepBuilder:
    """Import the builder registered for ``step``, or the ``"module:function"`` a paper names."""
    path = STEP_BUILDERS.get(step) if isinstance(step, str) else None
    if path is None and isinstance(step, str) and ":" in step:
        path = step
    if path is None:
        raise UnknownChoiceError("optimizer.step", step, (*STEP_BUILDERS, "<module>:<function>"))
    module_name, _, function_name = path.partition(":")
    import_reproductions()
    try:
        builder = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"optimizer.step={step!r}: cannot import {function_name!r} from {module_name!r} ({error}); "
            "name a step builder as 'module:function', e.g. reproductions.<paper>.<module>:build_<name>_step"
        ) from None
    if not callable(builder):
        raise ConfigError(f"optimizer.step={step!r}: {path} is not callable; it must be a step builder function")
    return builder


def build_base_optimizer(cfg: DictConfig, model: nn.Module) -> Optimizer:
    """The configured base optimizer over the model's parameter groups (one-pass methods use it directly)."""
    groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
    return base_optimizer_factory(cfg)(groups)


def build_standard_step(
    cfg: DictConfig,
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int,
    grad_clip: float | None,
) -> tuple[Optimizer, StepStrategy]:
    """SGD/AdamW with one pass per micro-batch; ``optimizer.orthogonal_grad: true`` wraps it in ⊥Grad."""
    if cfg.get("orthogonal_grad", False):
        from optrepro.optim.orthogonal import OrthogonalGrad

        groups = parameter_groups(model, no_decay_norm_and_bias=bool(cfg.get("no_decay_norm_and_bias", False)))
        optimizer = OrthogonalGrad(
            groups, base_optimizer_factory(cfg), rescale=bool(cfg.get("orthogonal_rescale", True))
        )
    else:
        optimizer = build_base_optimizer(cfg, model)
    return optimizer, StandardStep(optimizer, accumulate=accumulate, grad_clip=grad_clip)


def build_two_pass_step(
    cfg: DictConfig,
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int,
    grad_clip: float | None,
) -> tuple[Optimizer, StepStrategy]:
    """SAM, ASAM and their -ON variants (``perturb: norm_layers``). Every knob is read from the config as given:
    their defaults live in configs/optimizer/sam.yaml only (validate_two_pass names a missing one)."""
    base = base_optimizer_factory(cfg)
    in_perturbation = bool(cfg.weight_decay_in_perturbation)
    if in_perturbation and weight_decay_mode(cfg, base) != "coupled":
        raise ConfigError(
            "optimizer.weight_decay_in_perturbation=true needs coupled (L2) weight decay; "
            f"{cfg.name!r} uses decoupled decay. Set it to false or use an L2 base optimizer (SGD)."
        )
    adaptive = bool(cfg.adaptive)
    groups = parameter_groups(
        model,
        no_decay_norm_and_bias=bool(cfg.no_decay_norm_and_bias),
        perturb=str(cfg.perturb),
        adaptive=adaptive,
        normalize_bias=bool(cfg.normalize_bias),
    )
    optimizer = SAM(
        groups,
        base,
        rho=float(cfg.rho),
        adaptive=adaptive,
        eta=float(cfg.eta),
        weight_decay_in_perturbation=in_perturbation,
    )
    strategy = TwoPassStep(
        optimizer,
        accumulate=accumulate,
        grad_clip=grad_clip,
        perturbation_sync=str(cfg.perturbation_sync),
        m_sharpness=cfg.m_sharpness,
    )
    return optimizer, strategy


TWO_PASS_KNOBS = (
    "rho",
    "adaptive",
    "eta",
    "normalize_bias",
    "perturb",
    "perturbation_sync",
    "m_sharpness",
    "weight_decay_in_perturbation",
    "no_decay_norm_and_bias",
)


def validate_two_pass(cfg: DictConfig) -> None:
    """A two-pass optimizer config names every SAM knob (configs/optimizer/sam.yaml holds their defaults)."""
    missing = [knob for knob in TWO_PASS_KNOBS if knob not in cfg.optimizer]
    if missing:
        raise InvalidConfigError(
            f"optimizer.{missing[0]}",
            f"missing from the two_pass optimizer {cfg.optimizer.get('name')!r}"
            + (f" (so are {', '.join(missing[1:])})" if missing[1:] else ""),
            "start the optimizer config with `defaults: [sam, _self_]` (configs/optimizer/sam.yaml has every SAM knob)",
        )


build_two_pass_step.validate = validate_two_pass


def base_optimizer_factory(cfg: DictConfig) -> Callable[..., Optimizer]:
    """The base optimizer as a callable on param groups (Hydra partial in ``cfg.base``), decay mode checked."""
    if not cfg.base.get("_partial_", False):
        raise ConfigError("optimizer.base must be a Hydra partial: add `_partial_: true` (params are bound later)")
    base = hydra.utils.instantiate(cfg.base)
    weight_decay_mode(cfg, base)
    return base


def weight_decay_mode(cfg: DictConfig, base: Callable[..., Optimizer]) -> str:
    """``cfg.weight_decay_mode``, checked against what the base optimizer actually does."""
    base_class = getattr(base, "func", base)
    known = KNOWN_WEIGHT_DECAY_MODES.get(base_class)
    stated = cfg.get("weight_decay_mode", known)
    if stated not in WEIGHT_DECAY_MODES:
        raise UnknownChoiceError("optimizer.weight_decay_mode", stated, WEIGHT_DECAY_MODES)
    if known is not None and stated != known:
        raise ConfigError(
            f"optimizer.weight_decay_mode={stated!r} but {base_class.__name__} applies {known} weight decay"
        )
    return stated


def parameter_groups(
    model: nn.Module,
    *,
    no_decay_norm_and_bias: bool = False,
    perturb: str | None = None,
    adaptive: bool = False,
    normalize_bias: bool = False,
) -> list[dict[str, Any]]:
    """Partition the trainable parameters by the per-group flags the optimizers read.

    * ``weight_decay = 0`` for normalization parameters and biases when
      ``no_decay_norm_and_bias``.
    * ``perturb`` (SAM family, when ``perturb`` is given): ``"all"``, or
      ``"norm_layers"`` for SAM-ON, normalization layers found by module type.
    * ``adaptive_scale`` (ASAM, when ``adaptive``): false for biases unless
      ``normalize_bias`` (official ASAM rescales weights only; SAM-ON's README
      example rescales biases too). A bias is a parameter registered as ``bias``.
    Flags a method does not use are not added, so the base optimizer sees plain groups.
    """
    if perturb is not None and perturb not in PERTURB_CHOICES:
        raise UnknownChoiceError("optimizer.perturb", perturb, PERTURB_CHOICES)
    norm_ids = {id(p) for p in norm_layer_parameters(model)}
    bias_ids = {id(p) for m in model.modules() for n, p in m.named_parameters(recurse=False) if n == "bias"}

    groups: dict[tuple, dict[str, Any]] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        flags: dict[str, Any] = {}
        if no_decay_norm_and_bias and (id(param) in norm_ids or id(param) in bias_ids):
            flags["weight_decay"] = 0.0
        if perturb is not None:
            flags["perturb"] = perturb == "all" or id(param) in norm_ids
        if adaptive:
            flags["adaptive_scale"] = normalize_bias or id(param) not in bias_ids
        key = tuple(sorted(flags.items()))
        groups.setdefault(key, {"params": [], **flags})["params"].append(param)
    return list(groups.values())
