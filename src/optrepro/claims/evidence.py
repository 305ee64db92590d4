"""Choosing the runs that answer a claim, and saying why every other candidate run was not chosen.

A candidate is any record whose hardware-independent setting matches one of the claim's arms. The rules,
applied in this order (each run left out gets one reason, shown by `claims explain`):
- a seed outside the claim's range (0 .. seeds-1, fixed up front so no seed is cherry-picked) is not used;
- `failed` and `interrupted` runs are not results (the infrastructure failed, not the method);
  `diverged` runs and runs with a non-finite metric are results: failed seeds of the method;
- runs on different hardware classes (device, world size, precision) are never pooled: the claim uses the
  class that has results of every arm, preferring the claim's tier (`cpu`: CPU runs; `full`: accelerator
  runs), then the most seeds;
- within that class each arm uses one code version (`code.source_hash`, the files that decide what a run
  computes; else the git commit), so a fix is not averaged with the bug it fixed: the newest version that
  has every seed of the claim. A newer version with fewer seeds is *pending* (k of n seeds) and replaces the
  complete one only once it is complete; with no complete version the newest is used and the verdict says
  how many seeds it has. Versions shown to compute the same thing are one version: a seed run under both
  that finished with the same outcome to the last bit (`same_computation`; CPU runs are deterministic), so
  an edit that does not touch an arm's computation costs one re-run seed, not a whole new sample;
- a seed run twice at that version counts once (the most recently finished run).
Arms whose runs start from the same weights and see the same batches for a given seed (same model, dataset
and batch size; see `shares_init_and_order`) are marked `paired`, so the check can use per-seed differences.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from optrepro.claims.schema import Claim

RESULT_STATUSES = ("finished", "diverged")
TIER_ACCELERATOR = {"cpu": lambda accelerator: accelerator == "cpu", "full": lambda accelerator: accelerator != "cpu"}
TIMING_PREFIX = "timing/"
# Metrics measured after a run by a tool, not by the run itself: a finished run without one is "not measured".
MEASURED_AFTER = {"landscape/": "python -m optrepro landscape <run folder>..."}
# What fixes a run's initial weights and its batch order besides the seed (optrepro.train.run seeds everything,
# loads the data, then builds the network; batch order and augmentation come from (seed, epoch) generators);
# for structure learning, what fixes the generated data set (structure.task.run_structure: make_data(seed, ...)).
PAIRING_KEYS = (
    "model",
    "dataset",
    "train.batch_size",
    "structure.d",
    "structure.n",
    "structure.k",
    "structure.graph_type",
    "structure.noise",
)


def metric_column(metric: str, source: str) -> str:
    """The load_records column of a claim metric (`timing/<name>` reads the record's timing block)."""
    if metric.startswith(TIMING_PREFIX):
        return "timing_" + metric[len(TIMING_PREFIX) :]
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
    """The runs one arm contributes to a verdict: one per seed; a failed seed has value NaN."""

    arm: str
    by_seed: tuple[tuple[int, float], ...]
    failed_seeds: tuple[int, ...]
    run_ids: tuple[str, ...]
    versions: tuple[str, ...]  # the code version of the runs, newest first; several when shown to compute alike

    @property
    def commit(self) -> str:
        """The newest code version of the runs (the one a version pooled with older ones is named by)."""
        return self.versions[0]

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(seed for seed, _ in self.by_seed)

    @property
    def values(self) -> tuple[float, ...]:
        """The finite values of the seeds that did not fail."""
        return tuple(value for seed, value in self.by_seed if seed not in self.failed_seeds)

    @property
    def n_runs(self) -> int:
        return len(self.by_seed)


@dataclass(frozen=True)
class Unused:
    """A candidate run the verdict does not rest on, and why."""

    run_id: str
    arm: str
    seed: int
    reason: str


@dataclass(frozen=True)
class Evidence:
    """The chosen runs of every arm of a claim for one metric, or why there are none (`missing`)."""

    samples: dict[str, ArmSample]
    hardware: HardwareClass | None
    missing: str
    notes: tuple[str, ...]
    unused: tuple[Unused, ...] = ()
    pending: tuple[str, ...] = ()
    paired: bool = False
    missing_seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)


PILOT_SEEDS = 100  # seeds from here on are pilots: the runs a threshold or regime was chosen from, never evidence
Row = dict  # one record as evidence sees it: a load_records row as a plain dict


def hardware_class(row: Row | pd.Series) -> HardwareClass:
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


def shares_init_and_order(configs: list[dict]) -> bool:
    """True when runs of these configs with one seed start from the same weights and see the same batches."""

    def key(config: dict) -> str:
        picked = {}
        for dotted in PAIRING_KEYS:
            node = config
            for part in dotted.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            picked[dotted] = node
        return json.dumps(picked, sort_keys=True, default=str)

    return len(configs) >= 2 and len({key(config) for config in configs}) == 1


HardwareFilter = Callable[[HardwareClass], bool]


def gather_evidence(
    claim: Claim,
    records: pd.DataFrame,
    arm_keys: dict[str, str],
    metric: str,
    hardware_filter: HardwareFilter | None = None,
) -> Evidence:
    """The runs answering `claim`: `records` is a load_records table; `arm_keys` maps arm -> its recipe key
    (claims.match.arm_key), the value of the `recipe` column of its runs.

    `hardware_filter` restricts the candidates to some hardware classes (`claims run` with hardware overrides).
    """
    column = metric_column(metric, claim.metric_source)
    unused: list[Unused] = []
    notes: list[str] = []
    arm_rows: dict[str, list[Row]] = {}
    for arm in claim.arms:
        arm_rows[arm] = []
        for row in _rows(records, arm_keys[arm], column):
            seed, status = int(row["seed"]), row["status"]
            if seed >= PILOT_SEEDS:
                unused.append(
                    Unused(row["run_id"], arm, seed, f"pilot (seed {seed} >= {PILOT_SEEDS}): shown, never evidence")
                )
            elif seed not in claim.seed_values:
                unused.append(
                    Unused(
                        row["run_id"],
                        arm,
                        seed,
                        f"seed {seed} out of range (the claim uses seeds 0..{claim.seeds - 1})",
                    )
                )
            elif status not in RESULT_STATUSES:
                unused.append(Unused(row["run_id"], arm, seed, f"{status}: not a result (relaunch it)"))
            elif hardware_filter is not None and not hardware_filter(row["_hardware"]):
                unused.append(
                    Unused(
                        row["run_id"],
                        arm,
                        seed,
                        f"other hardware ({row['_hardware'].label()}) than the launch asks for",
                    )
                )
            else:
                arm_rows[arm].append(row)
    # Without a common hardware class, an arm lacks the seeds it has no result for on any hardware.
    all_seeds = {
        arm: tuple(s for s in claim.seed_values if s not in {r["seed"] for r in rows}) for arm, rows in arm_rows.items()
    }
    unrun = [arm for arm, rows in arm_rows.items() if not rows]
    if unrun:
        return Evidence(
            {}, None, f"no runs of arm(s) {', '.join(unrun)}", tuple(notes), tuple(unused), missing_seeds=all_seeds
        )
    hardware, hw_notes = _choose_hardware(claim, arm_rows)
    notes.extend(hw_notes)
    if hardware is None:
        return Evidence(
            {},
            None,
            "no hardware class has runs of every arm (arms are never compared across hardware)",
            tuple(notes),
            tuple(unused),
            missing_seeds=all_seeds,
        )
    chosen, pending, missing_seeds = {}, [], {}
    for arm, rows in arm_rows.items():
        for row in rows:
            if row["_hardware"] != hardware:
                unused.append(
                    Unused(
                        row["run_id"],
                        arm,
                        int(row["seed"]),
                        f"other hardware ({row['_hardware'].label()}; used {hardware.label()})",
                    )
                )
        chosen[arm], arm_unused, arm_pending, pooled = _choose_version(
            claim, arm, [r for r in rows if r["_hardware"] == hardware]
        )
        unused.extend(arm_unused)
        pending.extend(arm_pending)
        notes.extend(pooled)
        missing_seeds[arm] = tuple(s for s in claim.seed_values if s not in {r["seed"] for r in chosen[arm]})
    paired = shares_init_and_order(
        [json.loads(rows[0]["config_json"]) for rows in chosen.values() if isinstance(rows[0].get("config_json"), str)]
    )
    base = dict(unused=tuple(unused), pending=tuple(pending), paired=paired, missing_seeds=missing_seeds)
    if column not in records.columns:
        known = sorted(c for c in records.columns if c.startswith(("m_final_", "m_best_", "timing_")))
        return Evidence(
            {},
            None,
            f"no record has metric {metric!r} (column {column}); known: {', '.join(known)}" + _measure_hint(metric),
            tuple(notes),
            **base,
        )
    unmeasured = _unmeasured(metric, chosen, column)
    if unmeasured:
        return Evidence({}, None, unmeasured, tuple(notes), **base)
    samples = {arm: _sample(arm, rows, column) for arm, rows in chosen.items()}
    return Evidence(samples, hardware, "", tuple(notes), **base)


EVIDENCE_COLUMNS = (
    "run_id",
    "seed",
    "status",
    "finished_at",
    "code_source_hash",
    "code_git_commit",
    "outcome_digest",
    "hw_accelerator",
    "hw_device_names",
    "hw_world_size",
    "hw_precision",
    "config_json",
)


def _rows(records: pd.DataFrame, key: str, column: str) -> list[Row]:
    """The records of one arm as plain dicts with the columns evidence reads (a wide frame's rows are slow)."""
    subset = records.loc[records["recipe"] == key, [c for c in (*EVIDENCE_COLUMNS, column) if c in records.columns]]
    rows = subset.to_dict("records")
    for row in rows:
        row["_hardware"] = hardware_class(row)
        row["_version"] = code_version(row)
        row["_finished"] = row.get("finished_at") if isinstance(row.get("finished_at"), str) else ""
    return rows


def _measure_hint(metric: str) -> str:
    tool = next((command for prefix, command in MEASURED_AFTER.items() if metric.startswith(prefix)), None)
    return f" (not measured: run `{tool}` on the runs)" if tool else ""


def _unmeasured(metric: str, arm_rows: dict[str, list[Row]], column: str) -> str:
    """For a measured-after metric, the chosen finished runs that lack it (else they would read as failed seeds)."""
    if not _measure_hint(metric):
        return ""
    lacking = [
        row["run_id"]
        for rows in arm_rows.values()
        for row in rows
        if row["status"] == "finished" and not _present(row.get(column))
    ]
    if not lacking:
        return ""
    return f"{metric!r} not measured for {len(lacking)} finished run(s) ({', '.join(sorted(lacking))})" + _measure_hint(
        metric
    )


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _choose_hardware(claim: Claim, arm_rows: dict[str, list[Row]]) -> tuple[HardwareClass | None, list[str]]:
    seeds_by_class: dict[HardwareClass, dict[str, set]] = {}
    for arm, rows in arm_rows.items():
        for row in rows:
            seeds_by_class.setdefault(row["_hardware"], {}).setdefault(arm, set()).add(row["seed"])
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
        key=lambda hw: (
            min(len(s) for s in seeds_by_class[hw].values()),
            sum(len(s) for s in seeds_by_class[hw].values()),
        ),
    )
    notes = []
    if len(seeds_by_class) > 1:
        notes.append(
            f"mixed hardware, not pooled; used {chosen.label()} (tier {claim.tier}, most seeds); "
            f"runs by hardware: {listing}"
        )
    return chosen, notes


def same_computation(runs: Iterable[tuple[str, int, object]]) -> dict[str, tuple[str, ...]]:
    """version -> the versions shown to compute what it computes (itself included), for the (code version, seed,
    outcome digest) of one arm's runs on one hardware class: two versions are one when a seed run under both
    finished with the same outcome digest (records.record.outcome_digest), joined transitively. The edit between
    them did not touch this arm's computation, so their seeds pool."""
    parent: dict[str, str] = {}

    def root(version: str) -> str:
        while parent[version] != version:
            version = parent[version]
        return version

    first_with: dict[tuple[int, str], str] = {}
    for version, seed, digest in runs:
        parent.setdefault(version, version)
        if not isinstance(digest, str) or version == "unknown":
            continue
        other = first_with.setdefault((int(seed), digest), version)
        parent[root(version)] = root(other)
    classes: dict[str, list[str]] = {}
    for version in sorted(parent):
        classes.setdefault(root(version), []).append(version)
    return {version: tuple(classes[root(version)]) for version in parent}


def _choose_version(claim: Claim, arm: str, rows: list[Row]) -> tuple[list[Row], list[Unused], list[str], list[str]]:
    """The rows of one code version (versions that compute alike count as one), one per seed, with the unused rows,
    the pending-version notes and a note for each pooling of versions."""
    alike = same_computation((r["_version"], r["seed"], r.get("outcome_digest")) for r in rows)
    newest: dict[str, str] = {}
    for row in rows:
        newest[row["_version"]] = max(newest.get(row["_version"], ""), row["_finished"])
    newest_first = sorted(sorted(newest), key=lambda v: newest[v], reverse=True)
    group = {v: tuple(w for w in newest_first if w in alike[v]) for v in newest_first}  # newest first, named by [0]
    seeds_of: dict[str, set[int]] = {}
    for row in rows:
        seeds_of.setdefault(group[row["_version"]][0], set()).add(row["seed"])
    groups = list(dict.fromkeys(group[v][0] for v in newest_first))
    complete = [g for g in groups if seeds_of[g] >= set(claim.seed_values)]
    version = complete[0] if complete else groups[0]
    unused, pending = [], []
    newer = True
    for other in groups:
        if other == version:
            newer = False
            continue
        if newer:
            pending.append(
                f"{arm}: code version {_short(other)} has {len(seeds_of[other])} of {claim.seeds} seeds "
                f"(pending; the complete {_short(version)} is used until it has all)"
            )
            why = f"other code version {_short(other)} (pending: {len(seeds_of[other])} of {claim.seeds} seeds)"
        else:
            why = f"other code version {_short(other)} (older than {_short(version)})"
        unused += [Unused(r["run_id"], arm, int(r["seed"]), why) for r in rows if group[r["_version"]][0] == other]
    at_version = sorted(
        (r for r in rows if group[r["_version"]][0] == version), key=lambda r: (r["seed"], r["_finished"], r["run_id"])
    )
    latest = {row["seed"]: row for row in at_version}  # the last of each seed in that order wins
    for row in at_version:
        if latest[row["seed"]] is not row:
            unused.append(
                Unused(
                    row["run_id"],
                    arm,
                    int(row["seed"]),
                    f"seed {int(row['seed'])} was run again later; the later run is used",
                )
            )
    pooled = [_pooling_note(arm, group[version], at_version)] if len(group[version]) > 1 else []
    return list(latest.values()), unused, pending, pooled


def _pooling_note(arm: str, versions: tuple[str, ...], rows: list[Row]) -> str:
    """Which seeds showed that the pooled versions compute alike."""
    by_seed: dict[tuple[int, str], set[str]] = {}
    for row in rows:
        if isinstance(row.get("outcome_digest"), str):
            by_seed.setdefault((int(row["seed"]), row["outcome_digest"]), set()).add(row["_version"])
    shown = sorted({seed for (seed, _), found in by_seed.items() if len(found) > 1})
    return (
        f"{arm}: code versions {', '.join(_short(v) for v in versions)} compute alike (the same outcome to the "
        f"last bit on seed(s) {', '.join(map(str, shown))}), so their runs pool"
    )


def _sample(arm: str, rows: list[Row], column: str) -> ArmSample:
    by_seed, failed = [], []
    for row in rows:
        value = float(row[column]) if _present(row.get(column)) else math.nan
        if row["status"] == "diverged" or not math.isfinite(value):
            failed.append(int(row["seed"]))
        by_seed.append((int(row["seed"]), value))
    newest_first = dict.fromkeys(row["_version"] for row in sorted(rows, key=lambda r: r["_finished"], reverse=True))
    versions = tuple(newest_first) or ("unknown",)
    return ArmSample(arm, tuple(by_seed), tuple(failed), tuple(row["run_id"] for row in rows), versions)


def code_version(row: Row) -> str:
    """The source hash where the record has one, else its git commit, else 'unknown'."""
    for name in ("code_source_hash", "code_git_commit"):
        if isinstance(row.get(name), str) and row[name]:
            return row[name]
    return "unknown"


def _short(commit: str) -> str:
    return commit[:8]


def _int(value: object) -> int:
    return int(value) if value is not None and pd.notna(value) else 0
