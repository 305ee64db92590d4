"""forked_map: the same results, in the items' order, whether the work is spread over forked workers or not;
an error in a worker reaches the caller as itself."""

from __future__ import annotations

import os

import pytest

from optrepro import forked


def test_results_keep_the_items_order_with_and_without_workers(monkeypatch):
    items = list(range(40))
    parent = os.getpid()
    spread = forked.forked_map(lambda i: (i * i, os.getpid() != parent), items)
    assert [value for value, _ in spread] == [i * i for i in items]
    if forked.worker_count(len(items)) > 1:
        assert all(in_worker for _, in_worker in spread)
    monkeypatch.setattr(forked, "MIN_ITEMS", 10**6)
    assert forked.forked_map(lambda i: (i * i, os.getpid() != parent), items) == [(i * i, False) for i in items]


def test_small_jobs_stay_in_this_process():
    assert forked.worker_count(forked.MIN_ITEMS - 1) == 1


def test_an_error_in_a_worker_is_raised_to_the_caller():
    def fail_on_seven(i: int) -> int:
        if i == 7:
            raise ValueError("item 7 is bad")
        return i

    with pytest.raises(ValueError, match="item 7 is bad"):
        forked.forked_map(fail_on_seven, list(range(40)))
