"""The drift detector: re-run the shared-path runs and compare every metric with the committed run, digit for digit.

CPU runs are deterministic for one CPU type (same code, same packages, same kernels: same bits), so any difference
is a change in what the code computes or in the packages under it. Another CPU type runs other BLAS, oneDNN and
ATen kernels (AVX2 against AVX-512 or AMX: other summation orders); over a few hundred steps that moves these
metrics by 0.01-13% (2026-12-02: an AVX-512/AMX Xeon against the machine that recorded the first baseline). So the
committed runs are kept per CPU kernel set, `results/drift/<cpu kernels>/<run>/`, and a machine is compared with
the baseline of its own kernels; a machine whose kernels have none is compared with `results/drift/cpu-unknown/`
(recorded before the kernels were named), and a mismatch then says that the CPU may be the cause. A mismatch names
the run, the metric, both values and both sets of package versions; intended changes are re-blessed with
`regression drift --record` (it writes this machine's kernel set). Timings are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optrepro.paths import RESULTS_DIR
from optrepro.records.provenance import cpu_kernels
from optrepro.records.record import MEASUREMENTS, RECORD_NAME, outcome, portable, read_record
from optrepro.records.writer import write_json_atomic

DRIFT_DIR = RESULTS_DIR / "drift"
UNKNOWN_KERNELS = "cpu-unknown"  # the baseline recorded before the CPU kernel set was part of its path
ABSENT = "absent"


@dataclass(frozen=True)
class Mismatch:
    """One metric of one run whose committed and new values differ (ABSENT when one side lacks it)."""

    run: str
    metric: str
    committed: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.run}: {self.metric} was {self.committed!r}, now {self.new!r}"


def compare_runs(run: str, committed: Mapping[str, Any], new: Mapping[str, Any]) -> list[Mismatch]:
    """Every metric that is not bit-equal (floats compared exactly, as JSON stores them)."""
    old, now = outcome(committed), outcome(new)
    return [
        Mismatch(run, metric, old.get(metric, ABSENT), now.get(metric, ABSENT))
        for metric in sorted(set(old) | set(now))
        if old.get(metric, ABSENT) != now.get(metric, ABSENT)
    ]


def version_changes(committed: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """package -> (committed version, new version) for every package whose version differs."""
    old, now = committed.get("versions") or {}, new.get("versions") or {}
    return {
        name: (old.get(name), now.get(name)) for name in sorted(set(old) | set(now)) if old.get(name) != now.get(name)
    }


def describe_versions(versions: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in sorted(versions.items()))


def describe_drift(
    run: str,
    mismatches: list[Mismatch],
    committed: Mapping[str, Any],
    new: Mapping[str, Any],
    baseline: str = UNKNOWN_KERNELS,
) -> str:
    """The failure message of one run: each metric that moved, then both version sets and what differs."""
    changed = version_changes(committed, new)
    lines = [f"DRIFT {run}: {len(mismatches)} metric(s) differ from results/drift/{baseline}/{run}/{RECORD_NAME}"]
    lines += [f"  {m.metric}: committed {m.committed!r}, now {m.new!r}" for m in mismatches]
    lines.append(f"  committed with: {describe_versions(committed.get('versions') or {})}")
    lines.append(f"  now with:       {describe_versions(new.get('versions') or {})}")
    cause = (
        "none (the code changed what it computes)"
        if baseline != UNKNOWN_KERNELS
        else "none (the code changed what it computes, or this CPU's kernels differ from the unnamed ones of the "
        "baseline: `regression drift --record` at the last commit that passed makes one for this CPU)"
    )
    lines.append(
        "  versions that differ: "
        + (", ".join(f"{name} {old} -> {now}" for name, (old, now) in changed.items()) if changed else cause)
    )
    return "\n".join(lines)


def baseline_dir(drift_dir: Path = DRIFT_DIR, kernels: str | None = None) -> Path:
    """The committed runs for this machine's CPU kernels, else the ones recorded before kernels were named."""
    own = Path(drift_dir) / (kernels or cpu_kernels())
    return own if own.is_dir() else Path(drift_dir) / UNKNOWN_KERNELS


def read_committed(run: str, baseline: Path) -> dict[str, Any] | None:
    """The committed run as every reader sees it (records.record.read_record: migrated, measurements merged)."""
    return read_record(Path(baseline) / run)


def bless(run: str, run_dir: Path, drift_dir: Path = DRIFT_DIR, kernels: str | None = None) -> Path:
    """Commit the run folder's record.json and its measurement files as the reference of `run` on this machine's CPU
    kernels, as they are but for every path of this machine, made relative to the repository."""
    target = Path(drift_dir) / (kernels or cpu_kernels()) / run
    for name in (RECORD_NAME, *(f"{m}.json" for m in MEASUREMENTS)):
        source, copy = Path(run_dir) / name, target / name
        if source.exists():
            write_json_atomic(copy, portable(json.loads(source.read_text()), run_dir=Path(run_dir).resolve()))
        elif copy.exists():
            copy.unlink()  # a measurement the new run does not have
    return target
