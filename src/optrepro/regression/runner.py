"""Bring a fresh store up to date: run what is missing (shared-path runs or claims' runs), then measure landscapes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optrepro.claims import launch
from optrepro.claims.checks import check_metric
from optrepro.claims.match import ArmComposer, arm_key
from optrepro.claims.schema import Claim
from optrepro.records.recipe import recipe, recipe_key
from optrepro.records.table import load_records
from optrepro.regression.shared_paths import SELECTION, SharedPathRun
from optrepro.regression.store import execute, finished_in, measure_landscape, store_overrides

LANDSCAPE_PREFIX = "landscape/"
SEED = 0


def run_shared_paths(
    runs: Sequence[SharedPathRun], store: Path, launcher: str
) -> tuple[dict[str, tuple[Path, dict[str, Any]]], list[str]]:
    """name -> (record path, record) of each shared-path run in `store`, running the missing ones; and the failures.

    Every run and measurement uses one CPU thread per process: bit-equal results need a fixed thread count.
    """
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the runs launched below
    torch.set_num_threads(1)  # the landscape measurement runs in this process
    hashes = {run.name: (recipe_key(recipe(run.overrides)), SEED) for run in runs}
    done = finished_in(store)
    planned = [
        launch.PlannedRun(
            SELECTION, run.name, SEED, (*run.overrides, *store_overrides(store), f"seed={SEED}"), hashes[run.name][0]
        )
        for run in runs
        if hashes[run.name] not in done
    ]
    failed = execute(planned, launcher)
    done = finished_in(store)
    for run in runs:
        if run.landscape and hashes[run.name] in done and not _measured(done[hashes[run.name]][1]):
            if measure_landscape([done[hashes[run.name]][0].parent], run.landscape) != 0:
                failed.append(f"python -m optrepro landscape {' '.join(run.landscape)} <{run.name} run folder>")
    done = finished_in(store)
    return {run.name: done[hashes[run.name]] for run in runs if hashes[run.name] in done}, failed


def run_claims(claims: Sequence[Claim], store: Path, composer: ArmComposer, launcher: str) -> list[str]:
    """Run every (claim, arm, seed) the store lacks with `claims run`'s planner; measure landscape claims' runs."""
    overrides = store_overrides(store)
    with composer:
        # a fresh store: no older version to bridge, nothing held back
        planned = launch.plan_missing_runs(claims, load_records(store), composer, overrides).runs
    print(f"{len(planned)} run(s) missing in {store} for {len(claims)} claim(s)", flush=True)
    failed = execute(planned, launcher)
    done = finished_in(store)
    unmeasured = []
    for claim in claims:
        if not check_metric(claim).startswith(LANDSCAPE_PREFIX):
            continue
        for arm in claim.arms:
            key = arm_key(claim, arm, overrides)
            for seed in claim.seed_values:
                found = done.get((key, seed))
                if found and not _measured(found[1]) and found[0].parent not in unmeasured:
                    unmeasured.append(found[0].parent)
    if unmeasured and measure_landscape(unmeasured) != 0:  # the default settings, as the committed records were
        failed.append(f"python -m optrepro landscape {' '.join(str(d) for d in unmeasured)}")
    return failed


def _measured(record: dict[str, Any]) -> bool:
    return any(name.startswith(LANDSCAPE_PREFIX) for name in (record.get("metrics") or {}).get("final") or {})
