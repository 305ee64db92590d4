"""`optrepro results collect|report|check|wandb`: from run records to RESULTS.md and its regression check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from optrepro.paths import REPO_ROOT, REPRODUCTIONS_DIR, RESULTS_DIR, RUNS_DIR


def _report_paths(parser: argparse.ArgumentParser) -> None:
    from optrepro.claims.policy import DEFAULT_STORES

    parser.add_argument("--reproductions", type=Path, default=REPRODUCTIONS_DIR, help="default: %(default)s")
    parser.add_argument(
        "--records",
        type=Path,
        action="append",
        help="folder searched for record.json files; repeatable (default, as every claims command: "
        f"{', '.join(str(p) for p in DEFAULT_STORES)})",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "RESULTS.md", help="default: %(default)s")
    parser.add_argument("--plots", type=Path, default=RESULTS_DIR / "plots", help="default: %(default)s")
    parser.add_argument("--verdicts", type=Path, default=RESULTS_DIR / "verdicts.json", help="default: %(default)s")


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="results_command", required=True, metavar="<results command>")

    collect = commands.add_parser("collect", help="run records (run folders, W&B) -> one parquet table")
    collect.add_argument(
        "sources",
        nargs="*",
        type=Path,
        default=[RUNS_DIR],
        help="folders with run folders or W&B run folders (default: %(default)s)",
    )
    collect.add_argument(
        "--wandb-project",
        action="append",
        default=[],
        metavar="ENTITY/PROJECT",
        help="also read runs of this W&B project through the API (online)",
    )
    collect.add_argument("--table", type=Path, default=RESULTS_DIR / "table.parquet", help="default: %(default)s")
    collect.add_argument(
        "--into",
        type=Path,
        help="also copy each record to <INTO>/<paper>/<run_id>/record.json "
        "(the store `results report` reads, e.g. results/records)",
    )
    collect.set_defaults(handler=collect_command)

    report = commands.add_parser("report", help="evaluate every claim; write RESULTS.md, plots, verdicts.json")
    _report_paths(report)
    report.set_defaults(handler=report_command)

    check = commands.add_parser("check", help="fail when a claim that held in the committed verdicts no longer holds")
    _report_paths(check)
    check.add_argument(
        "--baseline",
        default="HEAD",
        help="committed verdicts: a git revision (reads its --verdicts file) or a file (default: HEAD)",
    )
    check.set_defaults(handler=check_command)

    wandb = commands.add_parser("wandb", help="compare each claim's arms in a W&B report (online) or locally")
    _report_paths(wandb)
    wandb.add_argument("--online", action="store_true", help="create W&B reports (needs an API key)")
    wandb.add_argument("--entity")
    wandb.add_argument("--project")
    wandb.add_argument("--local-dir", type=Path, default=RESULTS_DIR / "wandb", help="default: %(default)s")
    wandb.set_defaults(handler=wandb_command)


def collect_command(args: argparse.Namespace) -> int:
    from optrepro.records.table import records_to_frame
    from optrepro.results.collect import gather_records, store_records, write_parquet

    records = gather_records(args.sources, wandb_projects=args.wandb_project)
    table = records_to_frame(records)
    write_parquet(table, args.table)
    print(f"{len(table)} run(s) -> {args.table}")
    if args.into:
        written = store_records(records, args.into)
        print(f"{len(written)} record(s) -> {args.into}")
    return 0


def _evaluate(args: argparse.Namespace):
    """Verdicts of every claim by the evidence policy, after printing the stores they rest on."""
    from optrepro.claims.load import load_all_claims
    from optrepro.claims.policy import load_evidence_records, record_stores, stores_banner
    from optrepro.results.report import evaluate_papers

    stores = record_stores(args.records)
    records = load_evidence_records(stores)
    print(stores_banner(stores, records))
    return evaluate_papers(load_all_claims(args.reproductions), records), records


def report_command(args: argparse.Namespace) -> int:
    from optrepro.claims.load import load_all_claims
    from optrepro.claims.policy import record_stores, stores_banner
    from optrepro.results.report import read_tables, verdict_counts, write_report

    stores = record_stores(args.records)
    records, history = read_tables(stores)
    print(stores_banner(stores, records))
    results = write_report(
        load_all_claims(args.reproductions),
        stores,
        args.out,
        args.plots,
        args.verdicts,
        tables=(records, history),
    )
    summary = ", ".join(f"{n} {status}" for status, n in verdict_counts(results).items())
    print(f"{args.out}: {summary}; verdicts in {args.verdicts}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    from optrepro.regression.regress import compare, load_baseline
    from optrepro.results.report import verdicts_document

    baseline = load_baseline(args.baseline, args.verdicts, REPO_ROOT)
    results, _ = _evaluate(args)
    changes = compare(baseline, verdicts_document(results))
    regressions = [c for c in changes if c.is_regression]
    for change in changes:
        print(change.describe(), file=sys.stderr if change.is_regression else sys.stdout)
    if regressions:
        print(f"{len(regressions)} claim(s) that held in {args.baseline} no longer hold", file=sys.stderr)
        return 1
    print(f"no claim regressed against {args.baseline} ({len(changes)} change(s))")
    return 0


def wandb_command(args: argparse.Namespace) -> int:
    from optrepro.results import wandb_report
    from optrepro.results.report import claim_plot_paths

    results, records = _evaluate(args)
    if args.online:
        if not (args.entity and args.project):
            print(
                "optrepro: error: --online needs --entity and --project (where the runs were logged)", file=sys.stderr
            )
            return 2
        try:
            for result in results:
                report = wandb_report.build_online_report(result, records, args.entity, args.project)
                report.save()
                print(f"{result.paper.paper}: {report.url}")
        except ImportError:
            print(
                f"optrepro: error: W&B reports need the wandb-workspaces package: {wandb_report.WORKSPACES_HINT}",
                file=sys.stderr,
            )
            return 2
        return 0
    plots = {
        v.claim.key: [p for p in claim_plot_paths(args.plots, v.claim) if p.exists()]
        for r in results
        for v in r.verdicts
    }
    for result in results:
        publish = wandb_report.publish_instructions(
            wandb_report.offline_run_ids([result], records), args.entity, args.project
        )
        page = wandb_report.write_local_comparison(
            result, records, plots, args.local_dir / f"{result.paper.paper}.html", publish
        )
        print(f"{result.paper.paper}: {page}")
    print(f"index: {wandb_report.write_index(results, args.local_dir)}")
    print(wandb_report.publish_instructions(wandb_report.offline_run_ids(results, records), args.entity, args.project))
    return 0
