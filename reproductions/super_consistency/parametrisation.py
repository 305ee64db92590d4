"""muP, NTP and SP as data: each layer's init std, forward multiplier and the SGD learning-rate multiplier.

The paper's code (official repo, `SimpleConvNet` and `MuSGD` [repo]) stores raw N(0, 1) weights and puts the scale
in the forward pass: every layer multiplies its weight by 1/sqrt(fan_in); the readout by 1/(sqrt(N) gamma) with
gamma = sqrt(N) under muP (so 1/N) and gamma = 1 under NTP (so 1/sqrt(N)); under muP plain SGD's lr is eta_0 * N for
every weight tensor, under NTP it is eta_0. SP (PyTorch's default, not in the paper) stores N(0, 1/fan_in) weights
with no multiplier and one lr for all widths. Sharpness is compared across widths after multiplying lambda_max by the
lr multiplier (N under muP): the step on the raw weights is eta_0 * N, so N lambda_max is what meets 2 / eta_0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from omegaconf import DictConfig

from optrepro.config_schema import OpenSection, PosInt, check_node, choice

PARAMETRISATIONS = ("mup", "ntp", "sp")
ROLES = ("input", "hidden", "readout")


@dataclass(frozen=True)
class LayerScale:
    init_std: float  # std of the stored weight
    multiplier: float  # the forward pass uses multiplier * stored weight


class ScaledModelKnobs(OpenSection):
    """The ``model`` keys of scaled_convnet (configs/model/scaled_convnet.yaml); read as given."""

    parametrisation: Annotated[str, choice("reproductions.super_consistency.parametrisation:PARAMETRISATIONS")]
    width: PosInt  # N


class ScaledMLPKnobs(ScaledModelKnobs):
    """The ``model`` keys of scaled_mlp (configs/model/scaled_mlp.yaml)."""

    depth: PosInt  # hidden layers


def check_model(node: DictConfig | Mapping[str, Any]) -> ScaledModelKnobs:
    """The ``model`` node typed by its schema (ScaledMLPKnobs when it has a depth): one line, key, problem and fix.
    Called by WidthScalingTask.validate before any work, and by the model classes on their own arguments."""
    return check_node(node, "model", ScaledMLPKnobs if "depth" in node else ScaledModelKnobs)


def _known(parametrisation: str) -> None:
    if parametrisation not in PARAMETRISATIONS:
        raise ValueError(f"parametrisation {parametrisation!r} is not one of {PARAMETRISATIONS}")


def layer_scale(parametrisation: str, role: str, fan_in: int) -> LayerScale:
    """The scale of one layer; `fan_in` of the readout is the network's width N."""
    _known(parametrisation)
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    if parametrisation == "sp":
        return LayerScale(init_std=1.0 / math.sqrt(fan_in), multiplier=1.0)
    if role == "readout" and parametrisation == "mup":
        return LayerScale(init_std=1.0, multiplier=1.0 / fan_in)
    return LayerScale(init_std=1.0, multiplier=1.0 / math.sqrt(fan_in))


def lr_multiplier(parametrisation: str, width: int) -> float:
    """SGD's lr is eta_0 times this for every weight tensor: N under muP, 1 under NTP and SP."""
    _known(parametrisation)
    return float(width) if parametrisation == "mup" else 1.0
