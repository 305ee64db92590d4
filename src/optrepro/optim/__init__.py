"""Optimizers and step strategies; see docs/DESIGN.md, "Optimizer contract"."""

from optrepro.optim.backend import (
    LocalBackend,
    StepOutput,
    StepStrategy,
    TrainingBackend,
)
from optrepro.optim.factory import STEP_BUILDERS, build_optimizer
from optrepro.optim.sam import SAM
from optrepro.optim.standard import StandardStep
from optrepro.optim.two_pass import TwoPassStep

__all__ = [
    "SAM",
    "STEP_BUILDERS",
    "LocalBackend",
    "StandardStep",
    "StepOutput",
    "StepStrategy",
    "TrainingBackend",
    "TwoPassStep",
    "build_optimizer",
]
