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
from dataclasses import dataclass

from optrepro.errors import InvalidConfigError

PARAMETRISATIONS = ("mup", "ntp", "sp")
ROLES = ("input", "hidden", "readout")


@dataclass(frozen=True)
class LayerScale:
    init_std: float  # std of the stored weight
    multiplier: float  # the forward pass uses multiplier * stored weight


def check_parametrisation(parametrisation: str) -> str:
    if parametrisation not in PARAMETRISATIONS:
        raise InvalidConfigError(
            "model.parametrisation",
            f"{parametrisation!r} is not one of {', '.join(PARAMETRISATIONS)}",
            "mup (maximal update), ntp (neural tangent) or sp (PyTorch standard)",
        )
    return parametrisation


def check_width(width: object) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidConfigError(
            "model.width", f"{width!r} is not a positive integer", "set model.width=64 (or any >= 1)"
        )
    return width


def check_depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InvalidConfigError(
            "model.depth", f"{depth!r} is not a positive integer", "set the number of hidden layers, e.g. model.depth=2"
        )
    return depth


def layer_scale(parametrisation: str, role: str, fan_in: int) -> LayerScale:
    """The scale of one layer; `fan_in` of the readout is the network's width N."""
    check_parametrisation(parametrisation)
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    if parametrisation == "sp":
        return LayerScale(init_std=1.0 / math.sqrt(fan_in), multiplier=1.0)
    if role == "readout" and parametrisation == "mup":
        return LayerScale(init_std=1.0, multiplier=1.0 / fan_in)
    return LayerScale(init_std=1.0, multiplier=1.0 / math.sqrt(fan_in))


def lr_multiplier(parametrisation: str, width: int) -> float:
    """SGD's lr is eta_0 times this for every weight tensor: N under muP, 1 under NTP and SP."""
    check_parametrisation(parametrisation)
    return float(width) if parametrisation == "mup" else 1.0
