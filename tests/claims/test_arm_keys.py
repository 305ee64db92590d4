"""The match keys of claim arms: composed in forked workers when many are missing, they equal the keys composed one
by one in this process, and a bad arm still fails with the claim's own one-line error."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor

import pytest

from optrepro import forked
from optrepro.claims import match
from optrepro.claims.load import load_all_claims
from optrepro.claims.match import ArmComposer, ArmCompositionError, arm_match_keys
from optrepro.paths import REPRODUCTIONS_DIR

pytestmark = pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 cores to fork")


class CountedPool(ProcessPoolExecutor):
    """The executor the keys are composed in, counting how often it is started."""

    started = 0

    def __init__(self, *args, **kwargs) -> None:
        type(self).started += 1
        super().__init__(*args, **kwargs)


def repository_arms(count: int):
    """The first `count` claims (with all their arms) of the repository, in claims.yaml order."""
    claims = [claim for paper in load_all_claims(REPRODUCTIONS_DIR) for claim in paper.claims]
    return claims[:count]


@pytest.fixture
def uncached(monkeypatch):
    """A composer of the repository's config tree that neither reads nor writes the on-disk key cache."""
    monkeypatch.setattr(ArmComposer, "_save_keys", lambda self: None)
    composer = ArmComposer()
    composer._cached_keys = {}
    return composer


def test_keys_composed_in_workers_equal_keys_composed_here(uncached, monkeypatch):
    claims = repository_arms(20)
    distinct = {tuple(claim.arm_overrides(arm)) for claim in claims for arm in claim.arms}
    assert forked.worker_count(len(distinct)) >= 2  # else the workers would not be used
    monkeypatch.setattr(forked, "ProcessPoolExecutor", CountedPool)
    CountedPool.started = 0
    with uncached as composer:
        parallel = arm_match_keys(claims, composer)
    assert CountedPool.started == 1, "the keys were not composed in worker processes"
    serial_composer = ArmComposer()
    serial_composer._cached_keys = {}
    monkeypatch.setattr(forked, "MIN_ITEMS", 10**6)
    with serial_composer:
        serial = {(c.key, arm): match.match_key(serial_composer.compose(c, arm)) for c in claims for arm in c.arms}
    assert parallel == serial


def test_a_bad_arm_composed_in_a_worker_fails_with_the_claims_message(uncached, monkeypatch):
    claims = repository_arms(20)
    first = claims[0]
    arm = next(iter(first.arms))
    broken_arm = dataclasses.replace(first.arms[arm], overrides=("+repro=no_such_preset",))
    claims[0] = dataclasses.replace(first, arms={**first.arms, arm: broken_arm})
    monkeypatch.setattr(forked, "ProcessPoolExecutor", CountedPool)
    CountedPool.started = 0
    with uncached as composer, pytest.raises(ArmCompositionError, match=rf"^claim {first.key} .*arm '{arm}'"):
        arm_match_keys(claims, composer)
    assert CountedPool.started == 1
