"""`python -m optrepro <command>` (also the `optrepro` console script): one entry point for every tool.

Each command group lives in its own module, registered in COMMANDS; a module provides
`configure(parser)`, which adds its subcommands and sets `handler(args) -> exit code` on each.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from optrepro.errors import OptreproError

# Command groups: name -> module with `configure(parser)`. Register new groups here
# (e.g. "landscape": "optrepro.landscape.cli").
COMMANDS = {
    "claims": "optrepro.claims.cli",
    "data": "optrepro.data.fetch_cli",
    "landscape": "optrepro.landscape.cli",
    "regression": "optrepro.regression.cli",
    "results": "optrepro.results.cli",
}
# Commands renamed so that a command's name is its package's (2026-12-06): the old words get the new ones.
RENAMED = {
    ("claims", "regress"): "regression claims",
    ("drift", "check"): "regression drift",
    ("drift", "record"): "regression drift --record",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Every command is listed; only the one `argv` names is imported (some import torch), so --help is instant."""
    parser = argparse.ArgumentParser(prog="optrepro", description="Paper claims, run records and RESULTS.md.")
    groups = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, module in COMMANDS.items():
        group = groups.add_parser(name, help=f"{name} commands")
        if name == chosen:
            importlib.import_module(module).configure(group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    renamed = next((new for old, new in RENAMED.items() if tuple(argv[: len(old)]) == old), None)
    if renamed:
        print(f"optrepro: error: `{' '.join(argv[:2])}` is now `{renamed}` (same options)", file=sys.stderr)
        return 2
    args = build_parser(argv).parse_args(argv)
    try:
        return args.handler(args)
    except OptreproError as err:
        print(f"optrepro: error: {err}", file=sys.stderr)
        return 2
