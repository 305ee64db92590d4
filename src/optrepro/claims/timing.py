"""Timing claims measured side by side (`check: {kind: ratio, ..., measure: side_by_side}`).

A time-per-step ratio from two training processes that ran at different times on a shared machine measures the
load as much as the methods. A side-by-side claim is decided from one process instead: each arm's model and step
strategy are built from the arm's composed config (same seed, so the same initial weights), at the setting's last
epoch (trajectory terms on), and stepped on the same fixed batch; every repetition times K steps of every arm in a
rotated order, by this process's CPU time with one torch thread (as a cpu-tier job runs). The measurement is a
timing record, `results/timing/<paper>/<claim id>/<time>.json`, holding the per-repetition times and ratios, the
code version, the machine and the versions; the verdict is the 95% t interval of the mean log ratio over the
repetitions, exponentiated, against the claim's `max`. The newest record of the claim counts (a record is one
measurement; it is never pooled with another).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optrepro.claims.schema import Claim
from optrepro.claims.stats import seed_stats, t975
from optrepro.paths import RESULTS_DIR

TIMING_DIR = RESULTS_DIR / "timing"
REPETITIONS, STEPS, WARMUP_STEPS = 25, 4, 3
RECORD_KIND = "side_by_side_timing"


def timing_dir(claim: Claim, root: Path = TIMING_DIR) -> Path:
    return Path(root) / claim.paper / claim.id


def latest_record(claim: Claim, root: Path = TIMING_DIR) -> tuple[Path, dict[str, Any]] | None:
    """The claim's newest timing record whose arms are the claim's arms as registered now, or None."""
    arms = {arm: claim.arm_overrides(arm) for arm in claim.check.arms}
    found = sorted(timing_dir(claim, root).glob("*.json")) if timing_dir(claim, root).is_dir() else []
    for path in reversed(found):
        record = json.loads(path.read_text())
        if record.get("kind") == RECORD_KIND and record.get("arms") == arms:
            return path, record
    return None


def ratio_interval(ratios: list[float]) -> tuple[float, float, float, int]:
    """(geometric mean, low, high, n) of per-repetition ratios: a 95% t interval on the log scale."""
    stats = seed_stats([math.log(r) for r in ratios])
    half = t975(stats.n - 1) * stats.std / math.sqrt(stats.n) if stats.n >= 2 else math.nan
    return math.exp(stats.mean), math.exp(stats.mean - half), math.exp(stats.mean + half), stats.n


def measure(
    claim: Claim,
    build_arm: Callable[[list[str]], Callable[[int], None]],
    *,
    repetitions: int = REPETITIONS,
    steps: int = STEPS,
    warmup_steps: int = WARMUP_STEPS,
    root: Path = TIMING_DIR,
) -> Path:
    """Measure the claim's numerator and denominator arms side by side and write the timing record.

    `build_arm(overrides)` returns `step(count)`, which takes `count` training steps of that arm (claims.step_timer
    builds it from the composed config); its warm-up steps are untimed."""
    import torch

    from optrepro.records import provenance
    from optrepro.records.provenance import cpu_kernels
    from optrepro.records.writer import write_json_atomic

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        arms = {arm: claim.arm_overrides(arm) for arm in claim.check.arms}
        steppers = {arm: build_arm(overrides) for arm, overrides in arms.items()}
        for step in steppers.values():
            step(warmup_steps)
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        names = list(arms)
        for repetition in range(repetitions):
            shift = repetition % len(names)
            for arm in names[shift:] + names[:shift]:
                start = time.process_time()
                steppers[arm](steps)
                times[arm].append((time.process_time() - start) / steps)
    finally:
        torch.set_num_threads(threads)
    numerator, denominator = claim.check.numerator, claim.check.denominator
    record = {
        "kind": RECORD_KIND,
        "claim": claim.key,
        "arms": arms,
        "clock": "process CPU seconds per step, 1 torch thread",
        "repetitions": repetitions,
        "steps_per_repetition": steps,
        "warmup_steps": warmup_steps,
        "seconds_per_step": times,
        "ratios": [n / d for n, d in zip(times[numerator], times[denominator], strict=True)],
        "code": provenance.code_info(),
        "versions": provenance.package_versions(),
        "machine": {"cpu_kernels": cpu_kernels(), "processor": platform.processor() or platform.machine()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = timing_dir(claim, root) / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    write_json_atomic(path, record)
    return path
