"""`optrepro regression claims|drift`: the command lines of the regression checks (package and command share a name)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optrepro.paths import COMMITTED_RECORDS, CONFIG_DIR, REPO_ROOT, REPRODUCTIONS_DIR

LAUNCHERS = ("local", "slurm")


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", type=Path, help="fresh run store (default: runs_regress/<code version>; rerun to resume)"
    )
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: one run after another; slurm: job arrays (default: %(default)s)",
    )
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="default: %(default)s")


def configure(parser: argparse.ArgumentParser) -> None:
    """The `regression` command group: `regression claims` and `regression drift [--record]`."""
    commands = parser.add_subparsers(dest="regression_command", required=True, metavar="<regression command>")
    claims = commands.add_parser(
        "claims",
        help="re-run claims at the current code into a fresh store; fail when a claim that was reproduced no longer is",
    )
    claims.add_argument(
        "targets",
        nargs="*",
        metavar="PAPER|CLAIM",
        help="papers or claims (default: shared_paths, the short guard runs of each shared code path)",
    )
    claims.add_argument("--tier", choices=("full", "cpu", "smoke"), help="only claims of this tier")
    claims.add_argument(
        "--baseline",
        type=Path,
        default=COMMITTED_RECORDS,
        help="the committed records the new verdicts are compared with (default: %(default)s; "
        "results/drift for shared_paths)",
    )
    claims.add_argument("--report", type=Path, help="machine-readable report (default: <store>/regress.json)")
    claims.add_argument("--reproductions", type=Path, default=REPRODUCTIONS_DIR, help="default: %(default)s")
    _store_options(claims)
    claims.set_defaults(handler=claims_regress)
    drift = commands.add_parser(
        "drift", help="re-run the shared-path runs; fail when a metric differs from results/drift/ in any digit"
    )
    drift.add_argument(
        "--record",
        action="store_true",
        help="commit the re-runs as results/drift/ instead (after a change that moves the numbers on purpose)",
    )
    _store_options(drift)
    drift.set_defaults(handler=drift_command)


def _store(args: argparse.Namespace) -> Path:
    from optrepro.regression.store import default_store

    store = args.store or default_store()
    print(f"fresh store: {store}", flush=True)
    return store


def _shared_runs(args: argparse.Namespace, store: Path):
    from optrepro.regression.runner import run_shared_paths
    from optrepro.regression.shared_paths import SHARED_PATH_RUNS

    return run_shared_paths(SHARED_PATH_RUNS, store, args.launcher)


def drift_command(args: argparse.Namespace) -> int:
    return drift_record(args) if args.record else drift_check(args)


def drift_check(args: argparse.Namespace) -> int:
    from optrepro.records.provenance import cpu_kernels
    from optrepro.regression.drift import (
        baseline_dir,
        compare_runs,
        describe_drift,
        read_committed,
        version_changes,
    )

    kernels = cpu_kernels()
    baseline = baseline_dir(kernels=kernels)
    print(f"CPU kernels: {kernels}; baseline: {baseline.relative_to(REPO_ROOT)}", flush=True)
    found, failed = _shared_runs(args, _store(args))
    problems = [f"failed: {command}" for command in failed]
    for name, (path, record) in found.items():
        committed = read_committed(name, baseline)
        if committed is None:
            problems.append(
                f"{name}: no committed run {baseline.relative_to(REPO_ROOT)}/{name}/record.json; make it "
                "with `python -m optrepro regression drift --record`"
            )
            continue
        mismatches = compare_runs(name, committed, record)
        if mismatches:
            problems.append(describe_drift(name, mismatches, committed, record, baseline.name))
            continue
        changed = version_changes(committed, record)
        note = "; versions differ: " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()) if changed else ""
        print(f"ok {name}: every metric equal to the committed run{note}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"regression drift failed ({len(problems)} problem(s)); if the change is intended: "
            "`python -m optrepro regression drift --record` and commit results/drift/",
            file=sys.stderr,
        )
        return 1
    return 0


def drift_record(args: argparse.Namespace) -> int:
    from optrepro.regression.drift import bless

    found, failed = _shared_runs(args, _store(args))
    for name, (path, record) in found.items():
        print(f"{name}: {bless(name, path.parent).relative_to(REPO_ROOT)}/")
    for command in failed:
        print(f"failed: {command}", file=sys.stderr)
    return 1 if failed else 0


def claims_regress(args: argparse.Namespace) -> int:
    from optrepro.claims.load import load_all_claims, select_claims
    from optrepro.claims.match import ArmComposer
    from optrepro.regression import regress
    from optrepro.regression.drift import baseline_dir, read_committed
    from optrepro.regression.runner import run_claims
    from optrepro.regression.shared_paths import SELECTION, SHARED_PATH_RUNS, guard_claims

    targets = args.targets or [SELECTION]
    store = _store(args)
    if targets == [SELECTION]:
        baseline = baseline_dir()
        committed = {run.name: read_committed(run.name, baseline) for run in SHARED_PATH_RUNS}
        missing = [name for name, record in committed.items() if record is None]
        if missing:
            print(
                f"optrepro: error: no committed drift run for {', '.join(missing)}; make them with "
                "`python -m optrepro regression drift --record`",
                file=sys.stderr,
            )
            return 2
        claims = guard_claims(SHARED_PATH_RUNS, committed)
        failed = _shared_runs(args, store)[1]
    else:
        claims = select_claims(load_all_claims(args.reproductions), targets, tier=args.tier)
        baseline = args.baseline
        failed = run_claims(claims, store, ArmComposer(args.config_dir), args.launcher)
    results = regress.compare_verdicts(
        regress.decide_on_store(claims, baseline), regress.decide_on_store(claims, store)
    )
    for line in regress.render(results):
        print(line)
    report = regress.write_report(
        results, args.report or store / regress.REPORT_NAME, store=store, baseline=baseline, failed_runs=failed
    )
    regressions = [r.claim for r in results if r.is_regression]
    for command in failed:
        print(f"failed: {command}", file=sys.stderr)
    print(
        f"{len(results)} claim(s) re-run; {len(regressions)} regression(s)"
        + (": " + ", ".join(regressions) if regressions else "")
        + f"; report: {report}",
        file=sys.stderr if regressions else sys.stdout,
    )
    return 1 if regressions or failed else 0
