"""Teardown shared by the tests that spawn gloo ranks with torch.multiprocessing."""

from __future__ import annotations

import gc

import torch.distributed as dist


def end_process_group() -> None:
    """Collect, barrier, then destroy: no rank closes the group while another still uses it, and no DDP reducer
    outlives the group it uses. Without the barrier, one run in four of a DDP test on a loaded machine aborted in
    gloo's teardown ("terminate called without an active exception"); the same abort came back when a DDP model
    kept alive by a reference cycle was freed after the group (test_ddp_perturbation's patched `perturb`). The
    caller deletes its DDP models first; the collection frees those that cycles still hold."""
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
