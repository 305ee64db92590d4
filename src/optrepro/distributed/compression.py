"""`hardware.grad_compression` -> the Lightning DDP strategy with PyTorch's PowerSGD hook, and its byte log.

Config block (null: DDP's plain all-reduce, the neutral default):

    grad_compression: {name: powersgd, rank: 2, start_iter: 10, min_compression_rate: 2,
                       use_error_feedback: true, warm_start: true}

`start_iter` is PyTorch's `start_powerSGD_iter`: synchronized steps that use the plain all-reduce before
compression starts (at least 2 with error feedback or warm start; DDP rebuilds its buckets after step 1).
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.overrides.distributed import _register_ddp_comm_hook
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import PowerSGDState

from optrepro.distributed.powersgd import (
    CommCounter,
    counting_powersgd_hook,
    expected_sent_fraction,
)
from optrepro.errors import ConfigError, UnknownChoiceError
from optrepro.lit.last_row import LastRowCallback

COMPRESSORS = ("powersgd",)
POWERSGD_KEYS = ("name", "rank", "start_iter", "min_compression_rate", "use_error_feedback", "warm_start")
# Steps whose gradients leave the device through DDP's backward reduction only (what a comm hook sees). GAM
# all-reduces its passes explicitly, and SAM with perturbation_sync=global all-reduces pass 1 explicitly:
# those bytes would bypass the hook and the count.
HOOKED_STEPS = ("standard", "two_pass", "trajectory")

BYTES_KEY, DENSE_KEY, RATIO_KEY, EXPECTED_KEY = (
    "comm/bytes_per_step",
    "comm/dense_bytes_per_step",
    "comm/compression_ratio",
    "comm/expected_ratio",
)


def check_grad_compression(cfg: DictConfig) -> DictConfig | None:
    """The `hardware.grad_compression` block, checked against the strategy and the optimizer step; None when off."""
    spec = cfg.hardware.grad_compression
    if spec is None:
        return None
    name = spec.get("name")
    if name not in COMPRESSORS:
        raise UnknownChoiceError("hardware.grad_compression.name", name, COMPRESSORS)
    unknown = sorted(set(spec) - set(POWERSGD_KEYS))
    if unknown:
        raise ConfigError(f"hardware.grad_compression has unknown keys {unknown}; PowerSGD takes {list(POWERSGD_KEYS)}")
    missing = [key for key in POWERSGD_KEYS if spec.get(key) is None]
    if missing:
        raise ConfigError(
            f"hardware.grad_compression is missing {missing}; add `+hardware/compression=powersgd` "
            "for the defaults, then override single keys"
        )
    if cfg.hardware.strategy != "ddp":
        raise ConfigError(
            f"hardware.grad_compression={name} is a DDP communication hook, but hardware.strategy="
            f"{cfg.hardware.strategy!r} does not all-reduce gradients through DDP. Use hardware=ddp_cpu (2 gloo "
            "processes), hardware=ddp or hardware=multinode, or set hardware.grad_compression=null."
        )
    step = cfg.optimizer.get("step")
    if step not in HOOKED_STEPS or cfg.optimizer.get("perturbation_sync", "per_device") == "global":
        raise ConfigError(
            f"hardware.grad_compression={name} compresses only what DDP's backward all-reduces, but optimizer "
            f"{cfg.optimizer.get('name')!r} (step {step!r}, perturbation_sync "
            f"{cfg.optimizer.get('perturbation_sync')!r}) all-reduces gradients itself, past the hook. "
            "Use an optimizer "
            "whose step syncs through DDP (sgd, adamw, lion, saf, mesa, SAM family with perturbation_sync=per_device), "
            "or set hardware.grad_compression=null."
        )
    if int(spec.rank) < 1:
        raise ConfigError(f"hardware.grad_compression.rank={spec.rank}: the rank of P and Q must be at least 1")
    if (spec.use_error_feedback or spec.warm_start) and int(spec.start_iter) < 2:
        raise ConfigError(
            f"hardware.grad_compression.start_iter={spec.start_iter}: with error feedback or warm start PowerSGD "
            "starts at step 2 at the earliest (DDP rebuilds its buckets after step 1); set start_iter >= 2."
        )
    return spec


# PyTorch's PowerSGD hook chains each DDP bucket's all-reduces through future callbacks. On gloo (CPU processes) the
# chains of two buckets interleave in a different order on different ranks, a collective mismatch that aborts the
# first compressed step (ResNet-18's 45 MB of gradients make 2 buckets at DDP's default 25 MB). One bucket holding
# the whole model keeps one chain per step; the bytes sent are the same.
GLOO_BUCKET_CAP_MB = 4096


def build_ddp_strategy(cfg: DictConfig) -> tuple[str | DDPStrategy, list[Callback]]:
    """`hardware.strategy` as given, or a DDP strategy running the PowerSGD hook plus the callback logging its bytes."""
    spec = check_grad_compression(cfg)
    if spec is None:
        return cfg.hardware.strategy, []
    counter = CommCounter()
    state = PowerSGDState(
        process_group=None,  # the default (world) group, created by Lightning after this object exists
        matrix_approximation_rank=int(spec.rank),
        start_powerSGD_iter=int(spec.start_iter),
        min_compression_rate=float(spec.min_compression_rate),
        use_error_feedback=bool(spec.use_error_feedback),
        warm_start=bool(spec.warm_start),
    )
    one_bucket = {"bucket_cap_mb": GLOO_BUCKET_CAP_MB} if cfg.hardware.accelerator == "cpu" else {}
    strategy = HookedDDPStrategy(ddp_comm_state=state, ddp_comm_hook=counting_powersgd_hook(counter), **one_bucket)
    return strategy, [
        CommBytesCallback(counter, rank=int(spec.rank), min_compression_rate=float(spec.min_compression_rate))
    ]


class HookedDDPStrategy(DDPStrategy):
    """Lightning's DDPStrategy, registering its comm hook on every device type.

    Lightning registers `ddp_comm_hook` only when the root device is CUDA (a guard from torch 1.8, when hooks
    needed NCCL); gloo runs the same hooks on CPU, and the cpu tier and the tests run there.
    """

    def _register_ddp_hooks(self) -> None:
        _register_ddp_comm_hook(
            model=self.model,
            ddp_comm_state=self._ddp_comm_state,
            ddp_comm_hook=self._ddp_comm_hook,
            ddp_comm_wrapper=self._ddp_comm_wrapper,
        )


class CommBytesCallback(LastRowCallback):
    """Adds the epoch's measured bytes per step, the dense bytes and both ratios to the module's history rows.

    The module fills the epoch's row through `complete_last_row` right after writing it (`optrepro.lit.last_row`).
    Bytes are per worker: each rank hands the same tensors to all_reduce.
    """

    def __init__(self, counter: CommCounter, *, rank: int, min_compression_rate: float) -> None:
        self._counter = counter
        self._rank = rank
        self._min_compression_rate = min_compression_rate

    def complete_last_row(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        sent, dense, steps = self._counter.take()
        history = getattr(pl_module, "history", None)
        if not history or steps == 0 or BYTES_KEY in history[-1]:
            return
        shapes = [p.shape for p in pl_module.parameters() if p.requires_grad]
        pl_module.add_to_last_history_row(
            {
                BYTES_KEY: sent / steps,
                DENSE_KEY: dense / steps,
                RATIO_KEY: sent / dense,
                EXPECTED_KEY: expected_sent_fraction(shapes, self._rank, self._min_compression_rate),
            }
        )
