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
    "drift": "optrepro.regression.cli",
    "landscape": "optrepro.landscape.cli",
    "results": "optrepro.results.cli",
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
    args = build_parser(argv).parse_args(argv)
    try:
        return args.handler(args)
    except OptreproError as err:
        print(f"optrepro: error: {err}", file=sys.stderr)
        return 2
