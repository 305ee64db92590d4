"""Gradient communication of DDP runs: compression hooks (PowerSGD) and the bytes they send.

`hardware.grad_compression` (null: DDP's plain all-reduce) picks a hook; :func:`build_ddp_strategy` turns the
hardware block into the Lightning strategy and the callbacks that log what the hook sent.
"""

from optrepro.distributed.compression import build_ddp_strategy, check_grad_compression

__all__ = ["build_ddp_strategy", "check_grad_compression"]
