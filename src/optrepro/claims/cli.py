"""`optrepro claims list|explain|run`: see which claims hold and why, and launch the runs they still lack.

Every command reads the stores of the evidence policy (claims.policy.DEFAULT_STORES unless --records is given)
and prints them first, so two commands that disagree would show it on their first line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from optrepro import paths
from optrepro.paths import CONFIG_DIR, REPRODUCTIONS_DIR

LAUNCHERS = ("local", "slurm")
LAUNCH_LOCKS = ".launching"  # under the runs folder: one lock file per run a `claims run` is launching


def add_common_options(parser: argparse.ArgumentParser, *, composes: bool = False) -> None:
    """Where claims and records are; `composes`: also the Hydra config folder (a launch composes its arms)."""
    from optrepro.claims.policy import DEFAULT_STORES

    parser.add_argument(
        "--reproductions",
        type=Path,
        default=REPRODUCTIONS_DIR,
        help="folder of <paper>/claims.yaml (default: %(default)s)",
    )
    if composes:
        parser.add_argument(
            "--config-dir", type=Path, default=CONFIG_DIR, help="Hydra config folder (default: %(default)s)"
        )
    parser.add_argument(
        "--records",
        type=Path,
        action="append",
        help="folder searched for record.json files; repeatable "
        f"(default: {', '.join(str(p) for p in DEFAULT_STORES)})",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    from optrepro.claims.checks import VERDICTS

    commands = parser.add_subparsers(dest="claims_command", required=True, metavar="<claims command>")
    listing = commands.add_parser("list", help="claims with their current verdict")
    add_common_options(listing)
    listing.add_argument("--paper", help="only this paper")
    listing.add_argument("--tier", choices=("full", "cpu", "smoke"))
    listing.add_argument("--status", choices=VERDICTS)
    listing.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="under each claim: the test that decided it, the runs used and why others were not",
    )
    listing.set_defaults(handler=list_claims)

    explain = commands.add_parser("explain", help="why a claim's verdict is what it is: runs used, runs not used")
    add_common_options(explain)
    explain.add_argument("targets", nargs="+", metavar="CLAIM|PAPER")
    explain.set_defaults(handler=explain_claims)

    run = commands.add_parser("run", help="launch the runs (arm x seed) a claim still lacks; rerun to resume")
    add_common_options(run, composes=True)
    run.add_argument(
        "targets",
        nargs="+",
        metavar="CLAIM|PAPER|OVERRIDE",
        help="claims (<paper>/<id>) or papers; words with '=' are extra Hydra overrides for every run "
        "(e.g. hardware=gpu)",
    )
    run.add_argument("--tier", choices=("full", "cpu", "smoke"), help="only claims of this tier")
    run.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: one `python run.py` after another; slurm: one Hydra multirun (array) per arm",
    )
    run.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="local runs side by side, one torch thread each (default: %(default)s)",
    )
    run.set_defaults(handler=run_claims)


def _records(args: argparse.Namespace):
    """The policy's records for these arguments, after printing which stores they come from."""
    from optrepro.claims.policy import load_evidence_records, record_stores, stores_banner

    stores = record_stores(args.records)
    records = load_evidence_records(stores)
    print(stores_banner(stores, records))
    return records


def _decide(args: argparse.Namespace, claims):
    from optrepro.claims.policy import decide_claims

    return decide_claims(claims, _records(args))


def list_claims(args: argparse.Namespace) -> int:
    from optrepro.claims.explain import explanation
    from optrepro.claims.load import load_all_claims, select_claims

    papers = [p for p in load_all_claims(args.reproductions) if args.paper in (None, p.paper)]
    claims = select_claims(papers, tier=args.tier)
    verdicts = [v for v in _decide(args, claims).values() if args.status in (None, v.status)]
    width = max((len(v.claim.key) for v in verdicts), default=5)
    print(f"{'claim':<{width}}  {'tier':<5}  {'check':<8}  verdict")
    for verdict in verdicts:
        claim = verdict.claim
        pending = f"  [pending: {'; '.join(verdict.pending)}]" if verdict.pending else ""
        print(f"{claim.key:<{width}}  {claim.tier:<5}  {claim.check.kind:<8}  {verdict.label}{pending}")
        if args.verbose:
            print("\n".join(f"    {line}" for line in explanation(verdict)))
    return 0


def explain_claims(args: argparse.Namespace) -> int:
    from optrepro.claims.explain import explanation
    from optrepro.claims.load import load_all_claims, select_claims

    claims = select_claims(load_all_claims(args.reproductions), args.targets)
    for verdict in _decide(args, claims).values():
        print(f"{verdict.claim.key}: {verdict.label}")
        print("\n".join(f"  {line}" for line in explanation(verdict)))
    return 0


def measure_side_by_side(claims, dry_run: bool) -> None:
    """Timing claims measured side by side (claims.timing): one measurement each, unless the newest record was
    made at this code version."""
    from optrepro.claims import timing
    from optrepro.records.provenance import code_info

    version = code_info().get("source_hash")
    for claim in claims:
        found = timing.latest_record(claim)
        if found is not None and found[1]["code"].get("source_hash") == version:
            print(f"{claim.key}: measured at this code version ({found[0].name})")
            continue
        if dry_run:
            print(f"{claim.key}: would measure {' vs '.join(claim.check.arms)} side by side")
            continue
        from optrepro.claims.step_timer import arm_stepper

        print(f"{claim.key}: wrote {timing.measure(claim, arm_stepper)}")


def tune_pending(claims, args: argparse.Namespace, overrides: list[str]) -> tuple[list[str], bool]:
    """The tuning stage of every claim that has not chosen its values (claims.tuning): run the missing grid runs,
    then write each tuning record. Returns (failed commands, whether any record was written)."""
    from optrepro.claims import launch, tuning
    from optrepro.claims.match import ArmComposer
    from optrepro.records.provenance import code_info

    pending = [claim for claim in claims if claim.tuning_pending]
    if not pending:
        return [], False
    with ArmComposer(args.config_dir) as composer:
        for claim in pending:
            tuning.check_grid(claim, composer)
    records = _records(args)
    runs: dict[tuple[str, int], launch.PlannedRun] = {}  # claims that share a tuned arm share its grid runs
    for claim in pending:
        found = tuning.grid_runs(claim, records, overrides)
        missing = tuning.missing_grid_runs(claim, found)
        print(
            f"{claim.key}: tuning {claim.tuning.knob} on the validation split, {len(missing)} of "
            f"{len(found) * claim.tuning.seeds} grid run(s) missing"
        )
        for point, seed in missing:
            key = found[point][0]
            overrides_of_run = (*claim.arm_overrides(point.arm), *overrides, *point.extra, f"seed={seed}")
            runs.setdefault((key, seed), launch.PlannedRun(claim.key, point.arm, seed, overrides_of_run, key))
    failed = _launch(list(runs.values()), args)
    if args.dry_run or failed:
        return failed, False
    records = _records(args)
    for claim in pending:
        record = tuning.choose(claim, tuning.grid_runs(claim, records, overrides), code_info())
        chosen = ", ".join(f"{arm} {entry['chosen']:g}" for arm, entry in record["arms"].items())
        print(f"{claim.key}: chose {claim.tuning.knob}: {chosen}; wrote {tuning.write_record(claim, record)}")
    return [], True


def _launch(runs, args: argparse.Namespace) -> list[str]:
    """Run (or with --dry-run print) the planned runs with the chosen launcher; returns the failed commands."""
    from optrepro.claims import launch

    to_commands = launch.slurm_commands if args.launcher == "slurm" else launch.local_commands
    if args.dry_run:
        for command in to_commands(runs):
            print(launch.show(command))
        return []
    with launch.claimed(runs, paths.RUNS_DIR / LAUNCH_LOCKS) as (mine, taken):
        for line in taken:
            print(f"  {line}")
        commands = to_commands(mine)
        return launch.execute(commands, jobs=len(commands) if args.launcher == "slurm" else args.jobs)


def run_claims(args: argparse.Namespace) -> int:
    from optrepro.claims import launch
    from optrepro.claims.load import load_all_claims, select_claims
    from optrepro.claims.match import ArmComposer

    names = [t for t in args.targets if "=" not in t]
    overrides = [t for t in args.targets if "=" in t]
    claims = select_claims(load_all_claims(args.reproductions), names, tier=args.tier)
    timed = [c for c in claims if getattr(c.check, "measure", "runs") == "side_by_side"]
    claims = [c for c in claims if c not in timed]
    measure_side_by_side(timed, dry_run=args.dry_run)
    failed, tuned = tune_pending(claims, args, overrides)
    if failed:
        print("\n".join(f"failed: {command}" for command in failed))
        return 1
    if tuned:  # the arms now carry their chosen values
        claims = select_claims(load_all_claims(args.reproductions), [c.key for c in claims])
    pending = [c.key for c in claims if c.tuning_pending]
    if pending:
        print(f"after tuning: {', '.join(pending)} (their runs are planned once the tuning records exist)")
    claims = [c for c in claims if not c.tuning_pending]
    while True:  # twice at most: a second plan holds nothing back, its bridges have run
        with ArmComposer(args.config_dir) as composer:
            plan = launch.plan_missing_runs(claims, _records(args), composer, overrides)
        print(f"{len(plan.runs)} run(s) missing for {len(claims)} claim(s)")
        for run in plan.runs:
            print(f"  {run.claim} arm={run.arm} seed={run.seed}")
        for (claim, arm), seeds in plan.held_back.items():
            print(
                f"  {claim} arm={arm}: seeds {', '.join(map(str, seeds))} held back: an older code version has them; "
                f"if the bridge seed computes the same bits here, its runs pool and these never run"
            )
        failed = _launch(plan.runs, args)
        for command in failed:
            print(f"failed: {command}")
        if failed or args.dry_run or not plan.held_back:
            return 1 if failed else 0
