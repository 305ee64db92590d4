"""SAF and MESA (Du et al., "Sharpness-Aware Training for Free", NeurIPS 2022, arXiv 2205.14083).

Both add a *trajectory loss* to the cross-entropy of a single forward/backward pass:

    loss = CE(z, y) + lambda * tau^2 * mean_i KL( softmax(z_ref_i / tau) || softmax(z_i / tau) )

where ``z`` are the current logits and ``z_ref`` the logits of the same samples under past
weights. Minimising it penalises fast drops of the loss along the weight trajectory, which
the paper shows acts like SAM's sharpness term at almost no extra cost.

* SAF takes ``z_ref`` from a per-sample memory of the logits recorded ``E_tilde`` epochs ago.
* MESA takes ``z_ref`` from an extra forward pass of an EMA of the weights (no N x C memory).

Details that follow the official code (AngusDujw/SAF, ``SAF_train.py`` / ``MESA_train.py``):
the KL direction (past distribution is the target), the ``tau^2`` factor, the recorded logits
being the training-mode forward outputs of every epoch (recorded before the update), the
trajectory term being active only for ``epoch > E_start`` (0-based epochs), and the EMA model
(timm ``ModelEmaV2``) averaging parameters *and* float buffers and running in eval mode.
"""

from __future__ import annotations

import copy
from typing import Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn
from torch.optim import Optimizer

from optrepro.errors import UnknownChoiceError
from optrepro.optim.backend import Batch, StepOutput, StepStrategy, TrainingBackend
from optrepro.optim.factory import build_base_optimizer
from optrepro.optim.standard import (
    batch_rows,
    batch_total,
    finish_step,
    forward_loss,
    split_batch,
    sync_on_last,
    weighted,
)

TRAJECTORY_REFERENCES = ("memory", "ema")  # SAF, MESA
MEMORY_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def trajectory_kl(logits: Tensor, reference_logits: Tensor, temperature: float) -> Tensor:
    """``tau^2 * mean_i KL(p_ref_i || p_i)`` with both distributions softened by ``tau``.

    The ``tau^2`` factor keeps the gradient scale independent of ``tau`` (as in distillation);
    computed in at least float32 because autocast logits would lose the small KL values.
    """
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_p = F.log_softmax(logits.to(dtype) / temperature, dim=-1)
    log_q = F.log_softmax(reference_logits.to(dtype) / temperature, dim=-1)
    kl_per_sample = (log_q.exp() * (log_q - log_p)).sum(dim=-1)
    return kl_per_sample.mean() * temperature**2


def gather_from_all_ranks(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every rank (identity on one process).

    SAF's memory must see every sample each epoch, but each rank trains on its own shard;
    gathering keeps the memories identical, so rank 0's checkpoint is complete.
    Assumes equal per-rank batch sizes (the data module shards evenly).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class TrajectoryReference(Protocol):
    """Where the past outputs ``z_ref`` come from (SAF's memory or MESA's EMA model)."""

    def reference_logits(self, backend: TrainingBackend, inputs: Tensor, idx: Tensor, *, epoch: int) -> Tensor: ...

    def record(self, idx: Tensor, logits: Tensor, *, epoch: int) -> None: ...

    def after_update(self) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class OutputMemory:
    """SAF's per-sample memory of the logits recorded ``epochs_ago`` epochs back.

    A ring of ``epochs_ago`` slots of shape N x C: slot ``e % epochs_ago`` holds the logits of
    epoch ``e``. A sample is read (the slot still holds epoch ``e - epochs_ago``) before epoch
    ``e`` overwrites it, so ``epochs_ago`` slots suffice; the official code keeps one more slot
    because it writes before it reads. A sample not visited in epoch ``e - epochs_ago`` (e.g.
    dropped by ``drop_last``) keeps an older value, as in the official code.

    Size: ``epochs_ago * N * C * bytes``; CIFAR-100 with 3 slots in float32 is 57 MiB, the
    paper's reported extra memory on CIFAR. ``float16`` halves it (logits are O(10), so the
    relative error 5e-4 is far below the softening by ``tau``).
    """

    def __init__(self, num_samples: int, num_classes: int, epochs_ago: int, dtype: torch.dtype = torch.float32):
        if epochs_ago < 1:
            raise ValueError(f"epochs_ago (E_tilde) must be >= 1, got {epochs_ago}")
        self.epochs_ago = epochs_ago
        self.logits = torch.zeros(epochs_ago, num_samples, num_classes, dtype=dtype)

    def _slot(self, epoch: int) -> int:
        return epoch % self.epochs_ago

    def reference_logits(self, backend: TrainingBackend, inputs: Tensor, idx: Tensor, *, epoch: int) -> Tensor:
        self.logits = self.logits.to(inputs.device)
        return self.logits[self._slot(epoch), idx.to(inputs.device)]

    @torch.no_grad()
    def record(self, idx: Tensor, logits: Tensor, *, epoch: int) -> None:
        all_idx = gather_from_all_ranks(idx.to(logits.device))
        all_logits = gather_from_all_ranks(logits.detach())
        self.logits = self.logits.to(logits.device)
        self.logits[self._slot(epoch), all_idx] = all_logits.to(self.logits.dtype)

    def after_update(self) -> None:
        """The memory does not depend on the update."""

    def state_dict(self) -> dict:
        return {"logits": self.logits}

    def load_state_dict(self, state: dict) -> None:
        if state["logits"].shape != self.logits.shape:
            raise ValueError(f"memory shape {tuple(state['logits'].shape)} != {tuple(self.logits.shape)}")
        self.logits = state["logits"].to(self.logits.device, self.logits.dtype).clone()


def _tensors(model: nn.Module) -> list[Tensor]:
    """Parameters then buffers, in registration order: the same order in a model and its deep copy."""
    return [*model.parameters(), *model.buffers()]


class EmaTeacher:
    """MESA's reference: ``w_ema <- beta * w_ema + (1 - beta) * w`` after every update.

    Like timm's ``ModelEmaV2`` (used by the official MESA script) it averages parameters and
    floating-point buffers (BN statistics), copies integer buffers, and runs in eval mode, so
    its forward pass changes no state. It is never touched by gradients.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema_decay (beta) must be in [0, 1), got {decay}")
        self.decay = decay
        self.student = model
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def reference_logits(self, backend: TrainingBackend, inputs: Tensor, idx: Tensor, *, epoch: int) -> Tensor:
        self.model.to(inputs.device)
        with backend.autocast():
            return self.model(inputs)

    def record(self, idx: Tensor, logits: Tensor, *, epoch: int) -> None:
        """MESA keeps no per-sample record."""

    @torch.no_grad()
    def after_update(self) -> None:
        """One foreach multiply-add over all floating tensors (no per-step state_dict, no per-tensor kernels)."""
        pairs = zip(_tensors(self.model), _tensors(self.student))
        ema, student, ema_ints, student_ints = [], [], [], []
        for ema_value, value in pairs:
            value = value.detach().to(ema_value.device)
            (ema if ema_value.is_floating_point() else ema_ints).append(ema_value)
            (student if ema_value.is_floating_point() else student_ints).append(value)
        torch._foreach_mul_(ema, self.decay)
        torch._foreach_add_(ema, student, alpha=1.0 - self.decay)
        if ema_ints:
            torch._foreach_copy_(ema_ints, student_ints)

    def state_dict(self) -> dict:
        return {"ema_model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["ema_model"])


class TrajectoryStep(StepStrategy):
    """One forward/backward per micro-batch on ``CE + lambda * trajectory KL``, then one update.

    The trajectory term is added only for ``epoch > start_epoch`` (E_start, 0-based as in the
    official ``epoch > args.kl_start_epoch``); before that the step is the standard step. SAF's
    memory records every epoch's logits regardless, so the reference exists when it starts.
    Micro-batching, DDP sync, clipping and the fp16 scaler are the standard step's. The reported
    ``loss`` is the task loss alone (comparable with SGD runs); ``metrics["trajectory_loss"]`` is
    the unweighted trajectory term.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        reference: TrajectoryReference,
        *,
        trajectory_weight: float,
        temperature: float,
        start_epoch: int,
        accumulate: int = 1,
        grad_clip: float | None = None,
    ) -> None:
        if accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {accumulate}")
        if temperature <= 0:
            raise ValueError(f"temperature (tau) must be > 0, got {temperature}")
        if isinstance(reference, OutputMemory) and start_epoch + 1 < reference.epochs_ago:
            raise ValueError(
                f"start_epoch (E_start={start_epoch}) must be >= epochs_ago - 1 (E_tilde={reference.epochs_ago}) "
                "so that the memory holds recorded logits when the trajectory loss starts"
            )
        self.optimizer = optimizer
        self.reference = reference
        self.trajectory_weight = trajectory_weight
        self.temperature = temperature
        self.start_epoch = start_epoch
        self.accumulate = accumulate
        self.grad_clip = grad_clip

    def training_step(self, backend: TrainingBackend, batch: Batch, *, epoch: int) -> StepOutput:
        active = epoch > self.start_epoch
        self.optimizer.zero_grad(set_to_none=True)
        chunks = split_batch(batch, self.accumulate)
        chunk_indices = torch.tensor_split(batch[2], self.accumulate)
        losses, trajectory_losses, logits = [], [], []
        for (chunk, sync_context), idx in zip(sync_on_last(backend, chunks), chunk_indices):
            reference = self.reference.reference_logits(backend, chunk.inputs, idx, epoch=epoch) if active else None
            with sync_context:
                loss, chunk_logits = forward_loss(backend, chunk)
                total = loss
                if reference is not None:
                    trajectory = trajectory_kl(chunk_logits, reference, self.temperature)
                    total = loss + self.trajectory_weight * trajectory
                    trajectory_losses.append(weighted(trajectory.detach(), chunk.weight))
                backend.backward(weighted(total, chunk.weight))
            self.reference.record(idx, chunk_logits, epoch=epoch)
            losses.append(weighted(loss.detach(), chunk.weight))
            logits.append(chunk_logits.detach())
        metrics = finish_step(backend, self.optimizer, self.grad_clip)
        self.reference.after_update()
        if trajectory_losses:
            metrics["trajectory_loss"] = batch_total(trajectory_losses)
        return StepOutput(batch_total(losses), batch_rows(logits), metrics)

    def state_dict(self) -> dict:
        return {"reference": self.reference.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.reference.load_state_dict(state["reference"])


def build_trajectory_step(
    cfg: DictConfig,
    model: nn.Module,
    *,
    num_train_samples: int,
    num_classes: int,
    accumulate: int = 1,
    grad_clip: float | None = None,
) -> tuple[Optimizer, TrajectoryStep]:
    """Base optimizer plus the SAF (``reference: memory``) or MESA (``reference: ema``) step."""
    optimizer = build_base_optimizer(cfg, model)
    if cfg.reference == "memory":
        if cfg.memory_dtype not in MEMORY_DTYPES:
            raise UnknownChoiceError("optimizer.memory_dtype", cfg.memory_dtype, tuple(MEMORY_DTYPES))
        reference: TrajectoryReference = OutputMemory(
            num_train_samples, num_classes, int(cfg.epochs_ago), MEMORY_DTYPES[cfg.memory_dtype]
        )
    elif cfg.reference == "ema":
        reference = EmaTeacher(model, float(cfg.ema_decay))
    else:
        raise UnknownChoiceError("optimizer.reference", cfg.reference, TRAJECTORY_REFERENCES)
    step = TrajectoryStep(
        optimizer,
        reference,
        trajectory_weight=float(cfg.trajectory_weight),
        temperature=float(cfg.temperature),
        start_epoch=int(cfg.start_epoch),
        accumulate=accumulate,
        grad_clip=grad_clip,
    )
    return optimizer, step
