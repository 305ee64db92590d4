"""The settings of a landscape measurement, apart from the torch code so the CLI can show their defaults cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LandscapeSettings:
    """What was measured and how; stored with the results so figures are only compared at equal settings."""

    samples: int = 500
    points: int = 21  # 1-D grid points on [-span, span]
    points_2d: int = 11  # 2-D grid points per axis (0: no 2-D slice)
    span: float = 1.0
    directions: int = 2  # 1-D slices, each along its own random direction
    rise_at: float = 0.5  # loss_rise_1d is read at +-rise_at
    hessian_iterations: int = 20
    rho: float = 0.005  # adaptive-sharpness l-inf radius, relative to |w|
    ascent_steps: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.points < 3 or self.points_2d < 0 or self.points_2d in (1, 2) or self.span <= 0 or self.directions < 1:
            raise ValueError(
                f"landscape settings need points >= 3, points_2d 0 or >= 3, span > 0 and directions >= 1; got {self}"
            )
        if not 0 < self.rise_at <= self.span:
            raise ValueError(f"rise_at={self.rise_at} must lie in (0, span={self.span}]")
