"""Distributed Shampoo (Shi et al. 2023, arXiv 2309.06497): blocked Shampoo with grafting, for data-parallel runs.

Written from the paper's description and the authors' ``distributed_shampoo`` (facebookresearch/optimizers, the
version released with the paper), not copied. Per parameter, with t the step (from 1):

1. the parameter (a scalar counts as a vector of length 1) is reshaped with neighbouring dimensions merged while
   their product fits in ``max_preconditioner_dim`` (``use_merge_dims``, on by default as theirs), then cut
   into **blocks**: every dimension longer than ``max_preconditioner_dim`` is split into pieces of that length
   (the last one shorter);
2. per block with gradient G, every dimension i keeps a statistic ``H_i <- beta2 H_i + (1 - beta2) G_(i) G_(i)^T``
   (``beta2 = 1``: the sum, as Gupta et al.), started at 0, and the **graft** method its diagonal second moment;
3. every ``precondition_frequency`` steps from ``start_preconditioning_step`` on, the inverse roots
   ``(H_i / (1 - beta2^t) + epsilon I)^{-1/(2k)}`` are recomputed (k: the block's order; no bias correction
   at beta2 = 1);
4. the gradient is filtered, ``M <- beta1 M + (1 - beta1) G``, ``M / (1 - beta1^t)`` (beta1 = 0: G itself);
5. before ``start_preconditioning_step`` the block's direction is the graft method's step on the filtered
   gradient; from it on, Shampoo's direction ``M x_1 R_1 ... x_k R_k`` rescaled to the norm of the graft
   step (**grafting**; ``grafting_type="none"``: unscaled);
6. the blocks are put back together; decoupled weight decay adds ``weight_decay * W``; heavy-ball ``momentum``
   (optionally Nesterov) acts on that; ``W <- W - lr * direction``.

Graft methods keep the second moment A of the raw gradient (``adagrad``: sum of G^2; ``rmsprop``: EMA with
``grafting_beta2``; ``adam``: the same, bias-corrected) and step ``M / (sqrt(A) + grafting_epsilon)`` on the
filtered gradient; ``sgd`` steps M itself.

Under ``torch.distributed`` (world size > 1) each block is owned by one rank (greedy by block size, as the
authors balance their buffers); only the owner keeps its statistics, graft state and roots and computes its
direction, then all ranks all-gather the directions, so every rank applies the same update. Without an
initialized process group it is the single-process algorithm, bit for bit. Under DDP ``state_dict()`` gathers
every block's state (a collective: all ranks call it, as Lightning does), and ``load_state_dict`` keeps the
blocks this rank owns; the authors instead disable ``state_dict`` in favour of a distributed checkpoint.

Small differences from the authors' code: inverse roots in float64 by an eigendecomposition, eigenvalues
clamped at 0 before ``epsilon`` is added (theirs: float32 by default); roots are also computed at the first
preconditioned step when it is not a multiple of ``precondition_frequency`` (theirs only at multiples);
decoupled weight decay is always added to the direction (theirs scales the weights by 1 - lr * weight_decay
when momentum is 0, the same update up to rounding).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim import Optimizer

from optrepro.optim.shampoo import inverse_root, matricize, multiply_along

GRAFTING_TYPES = ("none", "sgd", "adagrad", "rmsprop", "adam")
# Shi et al.'s Shampoo step gets the graft norm as ||graft|| / (||shampoo|| + this), so a zero step stays zero.
NORM_GUARD = 1e-16


def merged_shape(shape: tuple[int, ...], max_dim: int) -> tuple[int, ...]:
    """``shape`` with neighbouring dimensions merged while their product stays <= ``max_dim`` (and size-1
    dimensions always merged), left to right: 3x4x5 with ``max_dim`` 20 becomes 12x5."""
    merged: list[int] = []
    for n in shape or (1,):
        if merged and (merged[-1] == 1 or n == 1 or merged[-1] * n <= max_dim):
            merged[-1] *= n
        else:
            merged.append(n)
    return tuple(merged)


def block_slices(shape: tuple[int, ...], max_dim: int) -> list[tuple[slice, ...]]:
    """The blocks of a tensor of ``shape``: every dimension cut into pieces of at most ``max_dim``, row-major."""
    per_dim = [[slice(start, min(start + max_dim, n)) for start in range(0, n, max_dim)] for n in shape]
    return list(itertools.product(*per_dim))


def assign_blocks(sizes: list[int], world_size: int) -> list[int]:
    """Owner rank of each block: largest first to the least loaded rank (ties: lower rank), so loads balance."""
    loads = [(0, rank) for rank in range(world_size)]
    owners = [0] * len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        load, rank = heapq.heappop(loads)
        owners[index] = rank
        heapq.heappush(loads, (load + sizes[index], rank))
    return owners


def ema_update(average: Tensor, value: Tensor, beta: float) -> None:
    """average <- beta average + (1 - beta) value; beta = 1 means the plain sum (AdaGrad)."""
    if beta == 1.0:
        average.add_(value)
    else:
        average.mul_(beta).add_(value, alpha=1.0 - beta)


def bias_correction(beta: float, step: int, enabled: bool) -> float:
    """1 - beta^t, or 1 where there is nothing to correct (disabled, or beta = 1: a sum, not an average)."""
    return 1.0 - beta**step if enabled and beta < 1.0 else 1.0


class DistributedShampoo(Optimizer):
    """Shi et al. (2023)'s Shampoo: blocks, EMA statistics, grafting, decoupled weight decay, roots split by rank.

    Defaults are those of the authors' ``DistributedShampoo`` released with the paper (AdaGrad grafting,
    betas (0.9, 1.0), epsilon 1e-12, blocks of 1024, roots every step). ``start_preconditioning_step=-1``
    means "equal to ``precondition_frequency``", as theirs.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 1.0),
        epsilon: float = 1e-12,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        max_preconditioner_dim: int = 1024,
        precondition_frequency: int = 1,
        start_preconditioning_step: int = -1,
        use_nesterov: bool = False,
        use_bias_correction: bool = True,
        use_merge_dims: bool = True,
        grafting_type: str = "adagrad",
        grafting_epsilon: float = 1e-3,
        grafting_beta2: float = 1.0,
    ) -> None:
        betas = tuple(betas)
        check_hyperparameters(
            lr=lr,
            betas=betas,
            epsilon=epsilon,
            momentum=momentum,
            weight_decay=weight_decay,
            max_preconditioner_dim=max_preconditioner_dim,
            precondition_frequency=precondition_frequency,
            start_preconditioning_step=start_preconditioning_step,
            grafting_type=grafting_type,
            grafting_epsilon=grafting_epsilon,
            grafting_beta2=grafting_beta2,
        )
        if start_preconditioning_step == -1:
            start_preconditioning_step = precondition_frequency
        defaults = {
            "lr": lr,
            "betas": betas,
            "epsilon": epsilon,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "max_preconditioner_dim": max_preconditioner_dim,
            "precondition_frequency": precondition_frequency,
            "start_preconditioning_step": start_preconditioning_step,
            "use_nesterov": use_nesterov,
            "use_bias_correction": use_bias_correction,
            "use_merge_dims": use_merge_dims,
            "grafting_type": grafting_type,
            "grafting_epsilon": grafting_epsilon,
            "grafting_beta2": grafting_beta2,
        }
        super().__init__(params, defaults)

    # ---- who computes what ----------------------------------------------------------------------------------
    def block_owners(self) -> dict[tuple[int, int], int]:
        """(parameter index over all groups, block index) -> owner rank; every rank derives the same map."""
        keys, sizes = [], []
        params = [(p, group) for group in self.param_groups for p in group["params"]]
        for index, (p, group) in enumerate(params):
            shape = preconditioned_shape(p, group)
            for block, slices in enumerate(block_slices(shape, group["max_preconditioner_dim"])):
                keys.append((index, block))
                sizes.append(math.prod(s.stop - s.start for s in slices))
        owners = assign_blocks(sizes, world_size())
        return dict(zip(keys, owners, strict=True))

    # ---- checkpoints: the full state on every rank ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The state of every block, whichever rank owns it, so a checkpoint written by rank 0 is complete.

        Under torch.distributed this is a collective: every rank must call it (Lightning does)."""
        packed = super().state_dict()
        if world_size() == 1:
            return packed
        mine = {
            index: {block: {k: move(v, "cpu") for k, v in state.items()} for block, state in s["blocks"].items()}
            for index, s in packed["state"].items()
        }
        gathered: list[Any] = [None] * world_size()
        dist.all_gather_object(gathered, mine)
        for index, s in packed["state"].items():  # s is the live state: replace it, do not change it
            blocks = {block: state for theirs in gathered for block, state in theirs.get(index, {}).items()}
            packed["state"][index] = {**s, "blocks": blocks}
        return packed

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a full state, then keep only the blocks this rank owns (their owner is a function of the rank)."""
        super().load_state_dict(state_dict)
        owners, rank = self.block_owners(), this_rank()
        for index, p in enumerate(p for group in self.param_groups for p in group["params"]):
            blocks = self.state[p].get("blocks", {}) if p in self.state else {}
            for block in [b for b in blocks if owners[(index, b)] != rank]:
                del blocks[block]

    # ---- the step ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        owners, rank = self.block_owners(), this_rank()
        work = []  # (param, group, block slices, owner, direction if owned) for every block of every param with a grad
        index = -1
        for group in self.param_groups:
            for p in group["params"]:
                index += 1
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["blocks"] = {}
                    if group["momentum"] > 0.0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                state["step"] += 1
                grad = p.grad.reshape(preconditioned_shape(p, group))
                for block, slices in enumerate(block_slices(grad.shape, group["max_preconditioner_dim"])):
                    owner, direction = owners[(index, block)], None
                    if owner == rank:
                        block_state = state["blocks"].setdefault(block, {})
                        direction = self._block_direction(grad[slices], block_state, group, state["step"])
                    work.append((p, group, slices, owner, direction))
        directions = all_gather_directions(work, rank)
        for p, group, block_directions in by_parameter(work, directions):
            self._apply(p, group, block_directions)
        return loss

    def _block_direction(self, grad: Tensor, state: dict[str, Any], group: dict[str, Any], step: int) -> Tensor:
        """One block's search direction (steps 2-5 of the module docstring); updates the block's state."""
        beta1, beta2 = group["betas"]
        if not state:
            state["statistics"] = [torch.zeros(n, n, dtype=grad.dtype, device=grad.device) for n in grad.shape]
            state["inverse_roots"] = None
            if group["grafting_type"] in ("adagrad", "rmsprop", "adam"):
                state["graft_second_moment"] = torch.zeros_like(grad)
            if beta1 > 0.0:
                state["first_moment"] = torch.zeros_like(grad)
        for dim, statistic in enumerate(state["statistics"]):
            g = matricize(grad, dim)
            ema_update(statistic, g @ g.T, beta2)
        if "graft_second_moment" in state:
            ema_update(state["graft_second_moment"], grad * grad, graft_beta2(group))
        preconditioning = step >= group["start_preconditioning_step"]
        if preconditioning and (step % group["precondition_frequency"] == 0 or state["inverse_roots"] is None):
            correction = bias_correction(beta2, step, group["use_bias_correction"])
            state["inverse_roots"] = [
                inverse_root(h / correction, 2 * grad.dim(), floor=0.0, shift=group["epsilon"]).to(grad.dtype)
                for h in state["statistics"]
            ]
        filtered = grad
        if beta1 > 0.0:
            ema_update(state["first_moment"], grad, beta1)
            filtered = state["first_moment"] / bias_correction(beta1, step, group["use_bias_correction"])
        graft = graft_direction(filtered, state, group, step)
        if not preconditioning:
            return graft
        shampoo = filtered
        for dim, root in enumerate(state["inverse_roots"]):
            shampoo = multiply_along(shampoo, root, dim)
        if group["grafting_type"] == "none":
            return shampoo
        return shampoo * (torch.linalg.vector_norm(graft) / (torch.linalg.vector_norm(shampoo) + NORM_GUARD))

    def _apply(
        self,
        p: Tensor,
        group: dict[str, Any],
        block_directions: list[tuple[tuple[slice, ...], Tensor]],
    ) -> None:
        """Reassemble the blocks, add decoupled weight decay and momentum, take the step."""
        direction = torch.empty(preconditioned_shape(p, group), dtype=p.dtype, device=p.device)
        for slices, block in block_directions:
            direction[slices] = block
        direction = direction.reshape(p.shape)
        if group["weight_decay"] != 0.0:
            direction = direction + group["weight_decay"] * p
        if group["momentum"] > 0.0:
            buffer = self.state[p]["momentum_buffer"].mul_(group["momentum"]).add_(direction)
            direction = direction + group["momentum"] * buffer if group["use_nesterov"] else buffer
        p.add_(direction, alpha=-group["lr"])


def move(value: Any, device: str) -> Any:
    """A block-state value (tensor, list of tensors or None) on ``device``."""
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [move(v, device) for v in value]
    return value


def preconditioned_shape(p: Tensor, group: dict[str, Any]) -> tuple[int, ...]:
    """The shape Shampoo sees: a scalar as a vector of length 1, small dimensions merged if asked."""
    if group["use_merge_dims"]:
        return merged_shape(tuple(p.shape), group["max_preconditioner_dim"])
    return tuple(p.shape) or (1,)


def graft_beta2(group: dict[str, Any]) -> float:
    """AdaGrad grafting sums squares whatever grafting_beta2 says; RMSprop and Adam average them."""
    return 1.0 if group["grafting_type"] == "adagrad" else group["grafting_beta2"]


def graft_direction(filtered: Tensor, state: dict[str, Any], group: dict[str, Any], step: int) -> Tensor:
    """The graft method's step on the filtered gradient: SGD as is, else divided by sqrt(second moment) + eps."""
    if "graft_second_moment" not in state:  # "sgd" and "none"
        return filtered
    adam = group["grafting_type"] == "adam"
    correction = bias_correction(group["grafting_beta2"], step, adam)
    return filtered / ((state["graft_second_moment"] / correction).sqrt() + group["grafting_epsilon"])


# ---- distribution ------------------------------------------------------------------------------------------------
def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def this_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_gather_directions(work: list, rank: int) -> list[Tensor]:
    """Every block's direction on every rank: each rank sends the flat concatenation of its own blocks'."""
    if world_size() == 1:
        return [direction for *_, direction in work]
    shapes = [tuple(s.stop - s.start for s in slices) for _, _, slices, _, _ in work]
    sizes = [math.prod(shape) for shape in shapes]
    owners = [owner for _, _, _, owner, _ in work]
    loads = [sum(size for size, owner in zip(sizes, owners, strict=True) if owner == r) for r in range(world_size())]
    reference = work[0][0]
    if any(p.dtype != reference.dtype or p.device != reference.device for p, *_ in work):
        raise ValueError(
            "DistributedShampoo: under torch.distributed all parameters must share one dtype and "
            "device (the directions travel in one all-gather buffer); cast the model first"
        )
    mine = [direction.reshape(-1) for *_, owner, direction in work if owner == rank]
    send = torch.zeros(max(loads), dtype=reference.dtype, device=reference.device)
    if mine:
        send[: loads[rank]] = torch.cat(mine)
    received = [torch.empty_like(send) for _ in range(world_size())]
    dist.all_gather(received, send)
    offsets = [0] * world_size()
    directions = []
    for shape, size, owner in zip(shapes, sizes, owners, strict=True):
        directions.append(received[owner][offsets[owner] : offsets[owner] + size].reshape(shape))
        offsets[owner] += size
    return directions


def by_parameter(work: list, directions: list[Tensor]):
    """(param, group, [(block slices, direction), ...]) per parameter, in step order."""
    for _, entries in itertools.groupby(zip(work, directions, strict=True), key=lambda entry: id(entry[0][0])):
        entries = list(entries)
        (param, group, *_), _ = entries[0]
        yield param, group, [(block[2], direction) for block, direction in entries]


# ---- hyperparameters ---------------------------------------------------------------------------------------------
def check_hyperparameters(
    *,
    lr,
    betas,
    epsilon,
    momentum,
    weight_decay,
    max_preconditioner_dim,
    precondition_frequency,
    start_preconditioning_step,
    grafting_type,
    grafting_epsilon,
    grafting_beta2,
) -> None:
    """A ValueError naming the first bad hyperparameter and its valid range."""

    def is_int(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    if len(betas) != 2:
        raise ValueError(f"DistributedShampoo: betas must be a pair (beta1, beta2), got {betas!r}")
    rules = [
        (lr >= 0.0, f"lr must be >= 0, got {lr}"),
        (0.0 <= betas[0] < 1.0, f"beta1 (betas[0]) must lie in [0, 1), got {betas[0]}"),
        (0.0 < betas[1] <= 1.0, f"beta2 (betas[1]) must lie in (0, 1] (1: AdaGrad sum), got {betas[1]}"),
        (epsilon > 0.0, f"epsilon must be > 0 (it is added to the statistics before the root), got {epsilon}"),
        (0.0 <= momentum < 1.0, f"momentum must lie in [0, 1), got {momentum}"),
        (weight_decay >= 0.0, f"weight_decay must be >= 0, got {weight_decay}"),
        (
            is_int(max_preconditioner_dim) and max_preconditioner_dim >= 1,
            f"max_preconditioner_dim must be an integer >= 1 (the block size), got {max_preconditioner_dim!r}",
        ),
        (
            is_int(precondition_frequency) and precondition_frequency >= 1,
            f"precondition_frequency must be an integer >= 1 (1: roots every step), got {precondition_frequency!r}",
        ),
        (
            is_int(start_preconditioning_step) and start_preconditioning_step >= -1,
            (
                "start_preconditioning_step must be an integer >= 0, or -1 for precondition_frequency, "
                f"got {start_preconditioning_step!r}"
            ),
        ),
        (
            grafting_type in GRAFTING_TYPES,
            f"grafting_type must be one of {', '.join(GRAFTING_TYPES)}, got {grafting_type!r}",
        ),
        (grafting_epsilon > 0.0, f"grafting_epsilon must be > 0, got {grafting_epsilon}"),
        (0.0 < grafting_beta2 <= 1.0, f"grafting_beta2 must lie in (0, 1], got {grafting_beta2}"),
    ]
    for ok, message in rules:
        if not ok:
            raise ValueError(f"DistributedShampoo: {message}")
