"""LowBitShampoo: the practical Shampoo of the 4-bit Shampoo paper (Alg. 1-4) with its preconditioners stored in
fp32, as 4-bit eigenvectors (the paper's method) or as a 4-bit preconditioner (the naive baseline).

For a matrix parameter W (m x n) with gradient G, every ``update_freq`` steps (T1 = T2 here) each side's
preconditioner A (L: m x m, R: n x n; started at epsilon I) is updated from that step's gradient,
A <- beta A + (1 - beta) M with M = G G^T or G^T G, and its inverse root (A + max(lambda) epsilon I)^{-1/4} recomputed;
every step G^ = L^ G R^ is grafted to G's Frobenius norm and W <- W - lr G~ (SGD without momentum as the paper's F)
[paper, Alg. 3-4]. ``storage``:
- ``fp32``: A kept in fp32 (the paper's 32-bit Shampoo);
- ``eigenvectors``: A kept as (eigenvalues fp32, eigenvectors quantized block-wise, quantize.py); before use V is
  dequantized and rectified by ``rectify_steps`` Björck steps [paper, Alg. 1-2]; the new A is eigendecomposed
  exactly (``eigh``; the paper: one warm-started QR step);
- ``preconditioner``: A's off-diagonal kept quantized, its diagonal fp32 (the paper's naive 4-bit Shampoo).
The inverse roots are kept in fp32 (the paper also quantizes their off-diagonal part: not done here). Sides of order
below ``min_order`` stay fp32 (the paper: matrices under 4096 entries); 1-D parameters take the plain SGD step.
``state_bytes()`` counts the stored preconditioner state (A's storage, packed b/8 bytes per code, plus fp32 roots).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import torch
from omegaconf import DictConfig
from pydantic import Field
from torch import Tensor

from optrepro.config_schema import NonNegFloat, NonNegInt, PosInt, Section, Text, check_node, choice
from optrepro.optim.per_parameter import PerParameterOptimizer
from reproductions.shampoo4bit.inverse_root import bjorck, exact_root, root_from_eigen
from reproductions.shampoo4bit.quantize import dequantize, quantize, stored_bytes

STORAGES = ("fp32", "eigenvectors", "preconditioner")
KEY = "optimizer.base"


class Side:
    """One side's preconditioner A in its storage, and its fp32 inverse root."""

    def __init__(self, order: int, storage: str, epsilon: float, bits: int, block: int, rectify_steps: int) -> None:
        self.order, self.storage, self.epsilon = order, storage, epsilon
        self.bits, self.block, self.rectify_steps = bits, block, rectify_steps
        self.root = torch.eye(order, dtype=torch.float64)
        self._store(epsilon * torch.eye(order, dtype=torch.float64))

    def _store(self, matrix: Tensor) -> None:
        if self.storage == "fp32":
            self.matrix = matrix.float()
        elif self.storage == "eigenvectors":
            eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
            self.eigenvalues = eigenvalues.float()
            self.codes, self.scales = quantize(eigenvectors.T, "linear2", self.bits, self.block)
        else:
            self.diagonal = torch.diagonal(matrix).float().clone()
            self.codes, self.scales = quantize(
                matrix - torch.diag(torch.diagonal(matrix)), "linear2", self.bits, self.block
            )

    def _eigenvectors(self) -> Tensor:
        stored = dequantize(self.codes, self.scales, self.order, "linear2", self.bits).T
        return bjorck(stored, self.rectify_steps)

    def load(self) -> Tensor:
        """A as float64, dequantized."""
        if self.storage == "fp32":
            return self.matrix.double()
        if self.storage == "eigenvectors":
            vectors = self._eigenvectors()
            return (vectors * self.eigenvalues.double()) @ vectors.T
        off = dequantize(self.codes, self.scales, self.order, "linear2", self.bits)
        off = 0.5 * (off + off.T)
        return off - torch.diag(torch.diagonal(off)) + torch.diag(self.diagonal.double())

    def update(self, statistic: Tensor, beta: float) -> None:
        """A <- beta A + (1 - beta) statistic, then the inverse root from the stored A."""
        self._store(beta * self.load() + (1 - beta) * statistic.double())
        if self.storage == "eigenvectors":
            self.root = root_from_eigen(self.eigenvalues.double(), self._eigenvectors(), self.epsilon)
        else:
            self.root = exact_root(self.load(), self.epsilon)

    def state_bytes(self) -> float:
        root = 4.0 * self.order**2
        if self.storage == "fp32":
            return root + 4.0 * self.order**2
        extra = 4.0 * self.order  # eigenvalues or diagonal, fp32
        return root + extra + stored_bytes(self.order, self.order, self.bits, self.block)


class LowBitShampooKnobs(Section):
    """The base optimizer's node (configs/optimizer/shampoo4bit.yaml), typed once; the defaults are the paper's
    (App. G) where it gives them."""

    target: Text | None = Field(None, alias="_target_")
    partial: bool = Field(True, alias="_partial_")
    lr: NonNegFloat = 0.1
    beta: Annotated[float, Field(ge=0, lt=1)] = 0.95
    epsilon: Annotated[float, Field(gt=0, lt=1)] = 1e-6  # relative: max(lambda) * epsilon
    update_freq: PosInt = 10
    storage: Annotated[str, choice("reproductions.shampoo4bit.optimizer:STORAGES")] = "eigenvectors"
    bits: Annotated[int, Field(ge=2, le=8)] = 4
    block: PosInt = 64
    rectify_steps: NonNegInt = 1
    min_order: PosInt = 64
    weight_decay: NonNegFloat = 0.0


class LowBitShampoo(PerParameterOptimizer):
    """4-bit Shampoo (module docstring); ``storage=fp32`` is the same algorithm at 32 bits."""

    @staticmethod
    def validate(node: DictConfig) -> None:
        """The config check calls this with `optimizer.base` before any work."""
        check_node(node, KEY, LowBitShampooKnobs)

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], **knobs: Any) -> None:
        """Knobs: LowBitShampooKnobs (its defaults for those not given)."""
        typed = check_node(knobs, KEY, LowBitShampooKnobs)
        super().__init__(params, typed.model_dump(exclude={"target", "partial"}))

    def state_bytes(self) -> float:
        return sum(side.state_bytes() for state in self.state.values() for side in state.get("sides", []))

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        grad = p.grad if group["weight_decay"] == 0 else p.grad + group["weight_decay"] * p
        if grad.dim() < 2:
            p.add_(grad, alpha=-group["lr"])
            return
        g = grad.reshape(grad.shape[0], -1).double()
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["sides"] = [
                Side(
                    n,
                    group["storage"] if n >= group["min_order"] else "fp32",
                    group["epsilon"],
                    group["bits"],
                    group["block"],
                    group["rectify_steps"],
                )
                for n in g.shape
            ]
        if state["step"] % group["update_freq"] == 0:
            left, right = state["sides"]
            left.update(g @ g.T, group["beta"])
            right.update(g.T @ g, group["beta"])
        state["step"] += 1
        direction = state["sides"][0].root @ g @ state["sides"][1].root
        direction = direction * (torch.linalg.matrix_norm(g) / torch.linalg.matrix_norm(direction).clamp_min(1e-30))
        p.add_(direction.reshape(p.shape).to(p.dtype), alpha=-group["lr"])
