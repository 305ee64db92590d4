"""Independent random streams derived from the run seed, identical on every device and rank."""

from __future__ import annotations

import numpy as np
import torch


def seeded_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded by hashing `parts`, so (seed, epoch) and (seed + 1, epoch - 1) do not collide."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))
