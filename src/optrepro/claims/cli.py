"""`optrepro claims list|run|regress`: see which claims hold, and launch the runs they still lack."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from optrepro.paths import CONFIG_DIR, REPO_ROOT, REPRODUCTIONS_DIR

DEFAULT_RECORD_ROOTS = (Path(os.environ.get("OPTREPRO_RUNS", REPO_ROOT / "runs")), REPO_ROOT / "results" / "records")
LAUNCHERS = ("local", "slurm")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reproductions", type=Path, default=REPRODUCTIONS_DIR,
                        help="folder of <paper>/claims.yaml (default: %(default)s)")
    parser.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="Hydra config folder (default: %(default)s)")
    parser.add_argument("--records", type=Path, action="append",
                        help="folder searched for record.json files; repeatable "
                             f"(default: {', '.join(str(p) for p in DEFAULT_RECORD_ROOTS)})")


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="claims_command", required=True, metavar="<claims command>")
    listing = commands.add_parser("list", help="claims with their current verdict")
    add_common_options(listing)
    listing.add_argument("--paper", help="only this paper")
    listing.add_argument("--tier", choices=("full", "cpu", "smoke"))
    listing.add_argument("--status", choices=("reproduced", "not reproduced", "not run"))
    listing.set_defaults(handler=list_claims)

    run = commands.add_parser("run", help="launch the runs (arm x seed) a claim still lacks; rerun to resume")
    add_common_options(run)
    run.add_argument("targets", nargs="+", metavar="CLAIM|PAPER|OVERRIDE",
                     help="claims (<paper>/<id>) or papers; words with '=' are extra Hydra overrides for every run "
                          "(e.g. hardware=gpu)")
    run.add_argument("--tier", choices=("full", "cpu", "smoke"), help="only claims of this tier")
    run.add_argument("--launcher", choices=LAUNCHERS, default="local",
                     help="local: one `python run.py` after another; slurm: one Hydra multirun (array) per arm")
    run.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    run.set_defaults(handler=run_claims)

    from optrepro.regression.cli import add_regress_command  # `claims regress`: src/optrepro/regression/
    add_regress_command(commands)


def _records(args: argparse.Namespace):
    from optrepro.records.table import load_records_from

    return load_records_from(args.records or DEFAULT_RECORD_ROOTS)


def list_claims(args: argparse.Namespace) -> int:
    from optrepro.claims.load import load_all_claims, select_claims
    from optrepro.claims.match import ArmComposer
    from optrepro.results.report import evaluate_papers

    papers = [p for p in load_all_claims(args.reproductions) if args.paper in (None, p.paper)]
    chosen = {c.key for c in select_claims(papers, tier=args.tier)}
    results = evaluate_papers(papers, _records(args), ArmComposer(args.config_dir))
    rows = [(v.claim.key, v.claim.tier, v.claim.check.kind, v.label)
            for r in results for v in r.verdicts
            if v.claim.key in chosen and args.status in (None, v.status)]
    width = max((len(row[0]) for row in rows), default=5)
    print(f"{'claim':<{width}}  {'tier':<5}  {'check':<8}  verdict")
    for key, tier, kind, label in rows:
        print(f"{key:<{width}}  {tier:<5}  {kind:<8}  {label}")
    return 0


def run_claims(args: argparse.Namespace) -> int:
    from optrepro.claims import launch
    from optrepro.claims.load import load_all_claims, select_claims
    from optrepro.claims.match import ArmComposer

    names = [t for t in args.targets if "=" not in t]
    overrides = [t for t in args.targets if "=" in t]
    claims = select_claims(load_all_claims(args.reproductions), names, tier=args.tier)
    with ArmComposer(args.config_dir) as composer:
        planned = launch.plan_missing_runs(claims, _records(args), composer, overrides)
    print(f"{len(planned)} run(s) missing for {len(claims)} claim(s)")
    for run in planned:
        print(f"  {run.claim} arm={run.arm} seed={run.seed} config_hash={run.config_hash}")
    build = launch.slurm_commands if args.launcher == "slurm" else launch.local_commands
    commands = build(planned)
    if args.dry_run:
        for command in commands:
            print(launch.show(command))
        return 0
    failed = launch.execute(commands, concurrent=args.launcher == "slurm")
    for command in failed:
        print(f"failed: {command}")
    return 1 if failed else 0
