"""`forked_map`: a function over many items in forked worker processes, one per core, for the commands whose cost
is many independent CPU-bound pieces (drawing RESULTS.md's plots).

The function and the items reach the workers by fork, not by pickling (a Hydra context, a matplotlib figure state,
closures all come along); only the results travel back. Where fork is unavailable or the work is small, it runs
in this process. Results come back in the items' order, so output does not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

MIN_ITEMS = 16  # below this, starting workers costs more than it saves
MAX_WORKERS = 8
_JOB: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def worker_count(items: int) -> int:
    """How many workers `forked_map` starts for `items` items (1: none, the work stays in this process)."""
    if items < MIN_ITEMS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)), items // (MIN_ITEMS // 2)))


def forked_map(function: Callable[[Item], Result], items: Sequence[Item]) -> list[Result]:
    """[function(item) for item in items], spread over forked workers when there are enough items and cores."""
    workers = worker_count(len(items))
    if workers == 1:
        return [function(item) for item in items]
    global _JOB
    _JOB = (function, items)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            shares = list(pool.map(_run_share, [range(start, len(items), workers) for start in range(workers)]))
    finally:
        _JOB = None
    results: list[Any] = [None] * len(items)
    for start, share in enumerate(shares):
        results[start::workers] = share
    return results


def _run_share(indices: range) -> list[Any]:
    assert _JOB is not None, "forked_map's job is only set in forked workers"
    function, items = _JOB
    return [function(items[index]) for index in indices]
