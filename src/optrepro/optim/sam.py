"""SAM and ASAM as a wrapper around a base optimizer.

The optimizer only does the arithmetic of one SAM step on tensors that already
hold gradients; who runs the forward/backward passes (and with which
micro-batches, precision and DDP sync) is :mod:`optrepro.optim.two_pass`.

* ``perturb()`` moves every perturbable parameter to ``w + e_w`` using the
  gradient currently in ``.grad``:
  SAM ``e_w = rho * g / ||g||``, ASAM ``e_w = rho * T_w^2 g / ||T_w g||`` with
  ``T_w = |w| + eta`` (elementwise, SamsungLabs/ASAM; ``eta`` defaults to 0.0 as
  in its ``example_cifar.py``). The norm runs over *all perturbed parameters of
  all groups* and over nothing else: for SAM-ON (groups with ``perturb=False``)
  it covers the normalization parameters only, as in mueller-mp/SAM-ON.
* Groups with ``adaptive_scale=False`` use ``T_w = 1`` under ASAM. The official
  ASAM code rescales only parameters named ``weight`` (biases keep ``T_w = 1``);
  SAM-ON's ``--normalize_bias`` rescales biases too. The factory sets the flag.
* ``restore()`` copies the clean weights back (bit-exact, unlike ``w -= e_w``).
* ``step()`` restores if needed and steps the base optimizer.

Weight decay. torch's SGD/Adam add ``wd * w`` to the gradient inside ``step()``,
i.e. at the clean weights and *after* the perturbation was computed.
google-research/sam instead puts ``wd/2 ||w||^2`` in the loss, so (i) the
perturbation direction includes ``wd * w`` and (ii) the second gradient includes
``wd * (w + e_w)``. ``weight_decay_in_perturbation=True`` reproduces both: it
adds ``wd * w`` to ``g`` in ``perturb()`` and ``wd * e_w`` to the gradient in
``step()`` before the base optimizer adds ``wd * w``. Only meaningful for
coupled (L2) decay; the factory rejects it with a decoupled base (AdamW).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from optrepro.optim.wrapper import BaseOptimizerWrapper

CLEAN_PARAM = "sam_clean_param"
PERTURBATION = "sam_perturbation"


class SAM(BaseOptimizerWrapper):
    """Sharpness-aware minimization around ``base_optimizer`` (built on the same param groups; see
    :class:`~optrepro.optim.wrapper.BaseOptimizerWrapper` for the shared state)."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        base_optimizer: Callable[..., Optimizer],
        *,
        rho: float,
        adaptive: bool = False,
        eta: float = 0.0,
        eps: float = 1e-12,
        weight_decay_in_perturbation: bool = False,
    ) -> None:
        if rho < 0.0:
            raise ValueError(f"SAM needs rho >= 0, got {rho}")
        if eta < 0.0:
            raise ValueError(f"ASAM needs eta >= 0, got {eta}")
        defaults = dict(
            rho=rho,
            adaptive=adaptive,
            eta=eta,
            eps=eps,
            weight_decay_in_perturbation=weight_decay_in_perturbation,
            perturb=True,
            adaptive_scale=True,
        )
        super().__init__(params, base_optimizer, defaults)
        self.is_perturbed = False

    def _perturbable_groups(self) -> list[tuple[dict, list[Tensor]]]:
        groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]
        return [(group, params) for group, params in groups if group["perturb"] and params]

    @staticmethod
    def _scaled_gradients(group: dict, params: list[Tensor]) -> tuple[list[Tensor], list[Tensor] | None]:
        """The group's ``T_w g`` (``g`` with ``wd * w`` added in L2-in-loss mode) and ``T_w`` (None for SAM)."""
        grads = [param.grad for param in params]
        decay = group.get("weight_decay", 0.0)
        if group["weight_decay_in_perturbation"] and decay != 0.0:
            grads = torch._foreach_add(grads, params, alpha=decay)
        if not (group["adaptive"] and group["adaptive_scale"]):
            return grads, None
        scales = torch._foreach_add(torch._foreach_abs(params), group["eta"])
        return torch._foreach_mul(grads, scales), scales

    @torch.no_grad()
    def perturb(self) -> Tensor:
        """Move perturbable parameters to ``w + e_w``; returns the norm that normalized ``e_w``.

        Whole parameter lists per group go through foreach kernels: a few launches per group, not per tensor.
        """
        if self.is_perturbed:
            raise RuntimeError("SAM.perturb() called twice; call restore() or step() in between")
        self.is_perturbed = True
        groups = self._perturbable_groups()
        if not groups:
            return torch.zeros(())
        scaled = [self._scaled_gradients(group, params) for group, params in groups]
        norm_device = groups[0][1][0].device
        norm = torch.linalg.vector_norm(
            torch.stack([n.to(norm_device) for grads, _ in scaled for n in torch._foreach_norm(grads)])
        )
        for (group, params), (grads, scales) in zip(groups, scaled):
            e_w = torch._foreach_mul(grads, group["rho"] / (norm + group["eps"]))
            if scales is not None:
                torch._foreach_mul_(e_w, scales)
            keep_perturbation = group["weight_decay_in_perturbation"] and group.get("weight_decay", 0.0) != 0.0
            for param, perturbation in zip(params, e_w):
                state = self.state[param]
                state[CLEAN_PARAM] = param.detach().clone()
                if keep_perturbation:
                    state[PERTURBATION] = perturbation
            torch._foreach_add_(params, e_w)
        return norm

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the clean weights back (one foreach copy); a no-op when not perturbed."""
        params, cleans = [], []
        for group in self.param_groups:
            for param in group["params"]:
                clean = self.state[param].pop(CLEAN_PARAM, None) if param in self.state else None
                if clean is not None:
                    params.append(param)
                    cleans.append(clean)
        if params:
            torch._foreach_copy_(params, cleans)
        self.is_perturbed = False

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Restore the clean weights and update them with the base optimizer.

        With ``closure`` (which must zero the grads, run the forward pass and
        ``backward()``) this is a full SAM step as in davda54/sam: the caller has
        already run the clean pass, ``step`` perturbs, calls ``closure`` at
        ``w + e_w`` and updates. Returns the closure's loss.
        """
        loss = None
        if closure is not None:
            self.perturb()
            self.zero_grad()
            with torch.enable_grad():
                loss = closure()
        self.restore()
        self._add_perturbation_decay()
        self.base_optimizer.step()
        return loss

    def _add_perturbation_decay(self) -> None:
        """L2-in-loss mode: the gradient of ``wd/2 ||w + e_w||^2`` minus the ``wd * w`` torch adds."""
        for group in self.param_groups:
            for param in group["params"]:
                e_w = self.state[param].pop(PERTURBATION, None) if param in self.state else None
                if e_w is not None and param.grad is not None:
                    param.grad.add_(e_w, alpha=group["weight_decay"])

    def state_dict(self) -> dict:
        if self.is_perturbed:
            raise RuntimeError("SAM state_dict() while perturbed would save w + e_w; call restore() first")
        return super().state_dict()
