"""The machine time it takes to check every cpu tier claim, from the run records, against a 240-minute budget.

Why: the cpu tier is meant to be re-checkable by anyone on one ordinary machine. Budget: 240 one-core job-minutes
for all cpu tier claims of all papers (every arm, every seed), i.e. about 2 hours of wall time on a 2-core
machine running two one-core jobs side by side (the local SLURM cluster's packing). History: 90 job-minutes until
the SAM-family tier moved to a regime where the SGD baseline overfits (30 epochs, no augmentation), then 180; 240
since the tier grew from 8 to 12 papers (PowerSGD, Shampoo, loss landscape, colored digits) on 2026-11-22.

Reads the run records under runs/ (or $OPTREPRO_RUNS) and results/records/ (as `optrepro claims list` does),
finds the runs that answer each arm of each cpu tier claim with the claims machinery (match keys: the arm's
composed config without seed and hardware), keeps those with a result (finished or diverged), a claimed seed and
repro.tier == cpu in their record, the latest one per arm and seed, and sums their `timing.wall_time_s` per paper
and overall. A run that answers several claims or papers (the shared SGD baseline) counts once in the total. Claimed
seeds of an arm that no run answers (by the same match keys) are counted and named, not estimated.
wall_time_s covers a run from data loading to its record (training, evaluation, checkpoints), not Python start-up;
runs launched side by side on one machine each count their own wall time.

Machine: any; measures nothing. Inputs: the record folders above.
Command: `python benchmarks/cpu_tier_budget.py` (`--quick` is accepted and changes nothing: it is already quick).
Prints the total in minutes last.
"""
from __future__ import annotations

from collections import defaultdict

from common import parse_args

from optrepro.claims.cli import DEFAULT_RECORD_ROOTS
from optrepro.claims.evidence import RESULT_STATUSES
from optrepro.claims.load import load_all_claims, select_claims
from optrepro.claims.match import ArmComposer, arm_match_keys, with_match_keys
from optrepro.paths import REPRODUCTIONS_DIR
from optrepro.records.table import load_records_from

TIER = "cpu"
BUDGET_MINUTES = 240


def answering_runs(claims, records, keys) -> tuple[dict[str, set[str]], dict[tuple[str, str], list[int]]]:
    """Paper -> run ids answering its claims (a result of a claimed seed, cpu tier, the latest per arm and seed),
    and (claim, arm) -> the claimed seeds no run answers."""
    results = records[records["status"].isin(RESULT_STATUSES) & (records.get("repro_tier") == TIER)]
    runs: dict[str, set[str]] = defaultdict(set)
    missing: dict[tuple[str, str], list[int]] = {}
    for claim in claims:
        for arm in claim.arms:
            rows = results[(results["match_key"] == keys[(claim.key, arm)]) & results["seed"].isin(claim.seed_values)]
            latest = rows.sort_values("finished_at").groupby("seed").tail(1)
            runs[claim.paper] |= set(latest["run_id"])
            lacking = sorted(set(claim.seed_values) - set(latest["seed"]))
            if lacking:
                missing[(claim.key, arm)] = lacking
    return runs, missing


def main() -> None:
    parse_args(__doc__)
    claims = select_claims(load_all_claims(REPRODUCTIONS_DIR), tier=TIER)
    records = with_match_keys(load_records_from(DEFAULT_RECORD_ROOTS))
    with ArmComposer() as composer:
        keys = arm_match_keys(claims, composer)
    runs, missing = answering_runs(claims, records, keys)
    minutes = dict(zip(records["run_id"], records["timing_wall_time_s"] / 60)) if len(records) else {}
    print(f"{len(records)} run record(s) under {', '.join(str(root) for root in DEFAULT_RECORD_ROOTS)}; "
          f"{len(claims)} {TIER} tier claim(s)")
    for paper in sorted({claim.paper for claim in claims}):
        print(f"  {paper}: {len(runs[paper])} run(s), {sum(minutes[r] for r in runs[paper]):.1f} min")
    used = set().union(*runs.values())
    total = sum(minutes[r] for r in used)
    print(f"{len(used)} distinct run(s) (a run shared by several claims counts once); "
          f"{sum(len(seeds) for seeds in missing.values())} claimed seed(s) without a run, not counted")
    for (claim, arm), seeds in missing.items():
        print(f"  missing: {claim} arm={arm} seed(s) {', '.join(map(str, seeds))}")
    verdict = "within" if total <= BUDGET_MINUTES else f"over by {total - BUDGET_MINUTES:.1f} min"
    print(f"budget {BUDGET_MINUTES} one-core job-minutes: {verdict}" + (" so far" if missing else ""))
    print(f"TOTAL {TIER} tier claims wall time, minutes: {total:.1f}")


if __name__ == "__main__":
    main()
