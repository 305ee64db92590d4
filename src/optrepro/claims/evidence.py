"""Choosing the runs that answer a claim: one hardware class, the newest code version, one run per seed.

Everything that is *not* used is said out loud in `notes`, because a verdict is only as credible as
the reader's ability to see which runs it rests on:
- runs on different hardware classes (device, world size, precision) are never
  pooled (the per-device batch is the config's global batch over the world size, so arms that differ in
  batch size, such as a small- vs large-batch claim, are still compared); the claim uses the class that has runs of every arm, preferring the claim's tier
  (`cpu` tier: CPU runs; `full`: accelerator runs), then the most seeds;
- within that class each arm uses the runs of its newest code version (that of the most recently
  finished run), so a fix does not get averaged with the bug it fixed. A code version is the record's
  `code.source_hash` (the files that decide what a run computes, uncommitted edits included), so a commit
  that only touches docs or tests does not split an arm; records without it fall back to the git commit;
- a seed run twice counts once (the most recently finished run);
- `failed` and `interrupted` runs are not results (the infrastructure failed, not the method);
  `diverged` runs and runs with a non-finite metric are results: failed seeds of the method.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from optrepro.claims.schema import Claim

RESULT_STATUSES = ("finished", "diverged")
TIER_ACCELERATOR = {"cpu": lambda accelerator: accelerator == "cpu", "full": lambda accelerator: accelerator != "cpu"}
TIMING_PREFIX = "timing/"
# Metrics measured after a run by a tool, not by the run itself: a finished run without one is "not measured".
MEASURED_AFTER = {"landscape/": "python -m optrepro landscape <run folder>..."}


def metric_column(metric: str, source: str) -> str:
    """The load_records column of a claim metric (`timing/<name>` reads the record's timing block)."""
    if metric.startswith(TIMING_PREFIX):
        return "timing_" + metric[len(TIMING_PREFIX):]
    return f"m_{source}_{metric}"


@dataclass(frozen=True)
class HardwareClass:
    """What must be equal for runs to be pooled: device kind, world size, precision."""

    accelerator: str
    devices: str
    world_size: int
    precision: str

    def label(self) -> str:
        return f"{self.devices} ×{self.world_size}, {self.precision}"


@dataclass(frozen=True)
class ArmSample:
    """The runs one arm contributes to a verdict: one per seed, finite values and failed seeds apart."""

    arm: str
    values: tuple[float, ...]
    failed_seeds: tuple[int, ...]
    seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    commit: str

    @property
    def n_runs(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class Evidence:
    """The chosen runs of every arm of a claim for one metric, or why there are none (`missing`)."""

    samples: dict[str, ArmSample]
    hardware: HardwareClass | None
    missing: str
    notes: tuple[str, ...]


def hardware_class(row: pd.Series) -> HardwareClass:
    accelerator = str(row.get("hw_accelerator") or "unknown")
    names = row.get("hw_device_names")
    devices = sorted(set(json.loads(names))) if isinstance(names, str) and names.startswith("[") else []
    label = accelerator if not devices or accelerator == "cpu" else " + ".join(devices)
    return HardwareClass(
        accelerator=accelerator,
        devices=label,
        world_size=_int(row.get("hw_world_size")),
        precision=str(row.get("hw_precision") or "unknown"),
    )


def gather_evidence(claim: Claim, records: pd.DataFrame, arm_keys: dict[str, str], metric: str) -> Evidence:
    """The runs answering `claim`: `records` has a match_key column; `arm_keys` maps arm -> match key."""
    column = metric_column(metric, claim.metric_source)
    notes: list[str] = []
    arm_rows = {}
    for arm in claim.arms:
        rows = records[(records["match_key"] == arm_keys[arm]) & records["seed"].isin(claim.seed_values)]
        not_results = rows[~rows["status"].isin(RESULT_STATUSES)]
        if len(not_results):
            notes.append(f"{arm}: {len(not_results)} failed/interrupted run(s) ignored (not results; relaunch them)")
        arm_rows[arm] = rows[rows["status"].isin(RESULT_STATUSES)]
    unrun = [arm for arm, rows in arm_rows.items() if rows.empty]
    if unrun:
        return Evidence({}, None, f"no runs of arm(s) {', '.join(unrun)}", tuple(notes))
    if column not in records.columns:
        known = sorted(c for c in records.columns if c.startswith(("m_final_", "m_best_", "timing_")))
        return Evidence({}, None, f"no record has metric {metric!r} (column {column}); known: {', '.join(known)}"
                        + _measure_hint(metric), tuple(notes))
    unmeasured = _unmeasured(metric, arm_rows, column)
    if unmeasured:
        return Evidence({}, None, unmeasured, tuple(notes))
    hardware, hw_notes = _choose_hardware(claim, arm_rows)
    notes.extend(hw_notes)
    if hardware is None:
        return Evidence({}, None, "no hardware class has runs of every arm (arms are never compared across "
                        "hardware)", tuple(notes))
    samples = {}
    for arm, rows in arm_rows.items():
        in_class = rows[[hardware_class(row) == hardware for _, row in rows.iterrows()]]
        samples[arm], arm_notes = _sample(arm, in_class, column)
        notes.extend(arm_notes)
    return Evidence(samples, hardware, "", tuple(notes))


def _measure_hint(metric: str) -> str:
    tool = next((command for prefix, command in MEASURED_AFTER.items() if metric.startswith(prefix)), None)
    return f" (not measured: run `{tool}` on the runs)" if tool else ""


def _unmeasured(metric: str, arm_rows: dict[str, pd.DataFrame], column: str) -> str:
    """For a measured-after metric, the finished runs that lack it (else they would read as failed seeds)."""
    if not _measure_hint(metric):
        return ""
    lacking = [run for rows in arm_rows.values()
               for run in rows.loc[(rows["status"] == "finished") & rows[column].isna(), "run_id"]]
    if not lacking:
        return ""
    return f"{metric!r} not measured for {len(lacking)} finished run(s) ({', '.join(sorted(lacking))})" + _measure_hint(metric)


def _choose_hardware(claim: Claim, arm_rows: dict[str, pd.DataFrame]) -> tuple[HardwareClass | None, list[str]]:
    seeds_by_class: dict[HardwareClass, dict[str, set]] = {}
    for arm, rows in arm_rows.items():
        for _, row in rows.iterrows():
            seeds_by_class.setdefault(hardware_class(row), {}).setdefault(arm, set()).add(row["seed"])
    common = [hw for hw, arms in seeds_by_class.items() if len(arms) == len(arm_rows)]
    listing = "; ".join(
        f"{hw.label()}: " + ", ".join(f"{arm} {len(seeds)} seed(s)" for arm, seeds in sorted(arms.items()))
        for hw, arms in sorted(seeds_by_class.items(), key=lambda item: item[0].label())
    )
    if not common:
        return None, [f"runs by hardware: {listing}"]
    fits_tier = TIER_ACCELERATOR.get(claim.tier, lambda accelerator: True)
    preferred = [hw for hw in common if fits_tier(hw.accelerator)] or common
    chosen = max(
        sorted(preferred, key=HardwareClass.label),
        key=lambda hw: (min(len(s) for s in seeds_by_class[hw].values()), sum(len(s) for s in seeds_by_class[hw].values())),
    )
    notes = []
    if len(seeds_by_class) > 1:
        notes.append(f"mixed hardware, not pooled; used {chosen.label()} (tier {claim.tier}, most seeds); "
                     f"runs by hardware: {listing}")
    return chosen, notes


def _sample(arm: str, rows: pd.DataFrame, column: str) -> tuple[ArmSample, list[str]]:
    rows = rows.assign(_commit=_code_version(rows),
                       _finished=rows.get("finished_at", pd.Series(index=rows.index, dtype=object)).fillna(""))
    newest_per_commit = rows.groupby("_commit")["_finished"].max().sort_index()
    commit = newest_per_commit.idxmax()
    notes = []
    if len(newest_per_commit) > 1:
        older = ", ".join(f"{_short(c)} ({(rows['_commit'] == c).sum()} run(s))" for c in newest_per_commit.index if c != commit)
        notes.append(f"{arm}: two or more code versions; used the newest, {_short(commit)}; not used: {older}")
    chosen = rows[rows["_commit"] == commit].sort_values(["seed", "_finished", "run_id"])
    per_seed = chosen.groupby("seed").tail(1)
    if len(per_seed) < len(chosen):
        notes.append(f"{arm}: {len(chosen) - len(per_seed)} repeated seed run(s); kept the latest of each seed")
    values, failed = [], []
    for _, row in per_seed.iterrows():
        value = float(row[column]) if pd.notna(row[column]) else math.nan
        if row["status"] == "diverged" or not math.isfinite(value):
            failed.append(int(row["seed"]))
        else:
            values.append(value)
    sample = ArmSample(arm, tuple(values), tuple(failed), tuple(int(s) for s in per_seed["seed"]),
                       tuple(per_seed["run_id"]), commit)
    return sample, notes


def _code_version(rows: pd.DataFrame) -> pd.Series:
    """The source hash where the record has one, else its git commit, else 'unknown'."""
    missing = pd.Series(index=rows.index, dtype=object)
    source = rows.get("code_source_hash", missing)
    commit = rows.get("code_git_commit", missing)
    return source.where(source.notna(), commit).fillna("unknown")


def _short(commit: str) -> str:
    return commit[:8]


def _int(value: object) -> int:
    return int(value) if value is not None and pd.notna(value) else 0
