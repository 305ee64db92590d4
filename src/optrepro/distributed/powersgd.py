"""PyTorch's PowerSGD comm hook (Vogels et al., NeurIPS 2019), run as shipped, with a byte counter around it.

The hook is `torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook.powerSGD_hook`, unchanged. To measure what
it sends, :func:`counting_powersgd_hook` runs the hook's own code object with two of its module globals replaced
for this copy only: `dist` (whose `all_reduce` now adds the size of every tensor handed to it) and `default`
(whose `_allreduce_fut`, the vanilla all-reduce before `start_powerSGD_iter`, does the same). The callbacks the hook
chains onto its futures are closures of that code, so their all-reduces (P, then Q) are counted too. Nothing in
torch is patched: other hooks and other collectives in the process are untouched.

:func:`expected_sent_fraction` is the same count done on paper: every gradient viewed as a matrix
(shape[0], rest), rank r' = min(n, m, r), compressed to P (n x r') and Q (m x r') when
(n + m) r' * min_compression_rate < n m, else sent whole (so 1-D tensors, biases and norm weights, always are).
"""

import threading
import types
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd_module


class CommCounter:
    """Bytes all-reduced by the hook, the dense bytes of the buckets it was given, and synchronized steps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the hook's later all-reduces run in the backend's completion thread
        self.sent_bytes = 0
        self.dense_bytes = 0
        self.steps = 0

    def add_sent(self, tensor: Tensor) -> None:
        with self._lock:
            self.sent_bytes += tensor.numel() * tensor.element_size()

    def add_bucket(self, bucket: dist.GradBucket) -> None:
        buffer = bucket.buffer()
        with self._lock:
            self.dense_bytes += buffer.numel() * buffer.element_size()
            self.steps += int(bucket.is_last())  # DDP hands the last bucket over once per synchronized backward

    def take(self) -> tuple[int, int, int]:
        """(sent bytes, dense bytes, steps) since the last call; resets the counts."""
        with self._lock:
            counts = (self.sent_bytes, self.dense_bytes, self.steps)
            self.sent_bytes = self.dense_bytes = self.steps = 0
        return counts


class _CountingCollectives:
    """`torch.distributed` as the hook sees it: `all_reduce` counts its tensor, everything else is torch's."""

    def __init__(self, counter: CommCounter) -> None:
        self._counter = counter

    def all_reduce(self, tensor: Tensor, *args, **kwargs):
        self._counter.add_sent(tensor)
        return dist.all_reduce(tensor, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(dist, name)


class _CountingDefaultHooks:
    """`default_hooks` as the hook sees it: the vanilla all-reduce counts its tensor."""

    def __init__(self, counter: CommCounter) -> None:
        self._counter = counter

    def _allreduce_fut(self, process_group, tensor: Tensor):
        self._counter.add_sent(tensor)
        return default_hooks._allreduce_fut(process_group, tensor)

    def __getattr__(self, name: str):
        return getattr(default_hooks, name)


def counting_powersgd_hook(counter: CommCounter):
    """A DDP comm hook `(state, bucket) -> future`: PyTorch's `powerSGD_hook`, counting into `counter`."""
    original = powersgd_module.powerSGD_hook
    scoped_globals = {
        **original.__globals__,
        "dist": _CountingCollectives(counter),
        "default": _CountingDefaultHooks(counter),
    }
    hook = types.FunctionType(
        original.__code__, scoped_globals, original.__name__, original.__defaults__, original.__closure__
    )

    # No `from __future__ import annotations` in this module: DDP checks that `bucket` is annotated with the
    # GradBucket class itself (and the return with Future[Tensor]), not with a string.
    def powersgd_counting_hook(
        state: powersgd_module.PowerSGDState, bucket: dist.GradBucket
    ) -> torch.futures.Future[torch.Tensor]:
        counter.add_bucket(bucket)
        return hook(state, bucket)

    return powersgd_counting_hook


def expected_sent_fraction(
    shapes: Iterable[torch.Size | tuple[int, ...]], rank: int, min_compression_rate: float
) -> float:
    """Elements PowerSGD all-reduces per step over the dense element count, for gradients of these shapes."""
    sent = dense = 0
    for shape in shapes:
        numel = int(torch.Size(shape).numel())
        n = int(shape[0])
        m = numel // n
        r = min(n, m, rank)
        low_rank = (n + m) * r
        sent += low_rank if low_rank * min_compression_rate < numel else numel
        dense += numel
    if dense == 0:
        raise ValueError("no gradients to compress: the model has no trainable parameters")
    return sent / dense
