"""Teardown shared by the tests that spawn gloo ranks with torch.multiprocessing."""

from __future__ import annotations

import torch.distributed as dist


def end_process_group() -> None:
    """A barrier, then destroy: no rank closes the group while another still uses it. Without the barrier, one
    run in four of a DDP test on a loaded machine aborted in gloo's teardown ("terminate called without an
    active exception")."""
    dist.barrier()
    dist.destroy_process_group()
