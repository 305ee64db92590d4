"""The shape SAM and ⊥Grad share: an optimizer that works on gradients or weights and lets a base optimizer step.

The wrapper's ``param_groups`` and ``state`` are the base optimizer's own objects, so an LR scheduler bound to
either optimizer acts on both, and ``state_dict`` is the base optimizer's (its buffers, e.g. momentum, together
with the wrapper's own group keys).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor
from torch.optim import Optimizer


class BaseOptimizerWrapper(Optimizer):
    """Builds ``base_optimizer`` on the param groups (with the wrapper's ``defaults`` in them) and shares its state."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., Optimizer],
        defaults: dict[str, Any],
    ) -> None:
        super().__init__(params, defaults)
        self.base_optimizer = base_optimizer(self.param_groups)
        self._share_base_state()
        self.defaults.update(self.base_optimizer.defaults)

    def require_base_without_weight_decay(self, why: str) -> None:
        """For a wrapper that applies weight decay itself: the base optimizer's own decay would apply it twice."""
        for group in self.param_groups:
            if group.get("weight_decay", 0.0):
                raise ValueError(
                    f"the base optimizer must run without weight decay ({why}); "
                    f"a group has weight_decay={group['weight_decay']}"
                )

    def _share_base_state(self) -> None:
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self._share_base_state()
