"""`optrepro data fetch NAME...`: download datasets once where there is internet (a cluster's login node).

Compute nodes often have no internet. Fetched into the same data folder (`OPTREPRO_DATA`, default `<repo>/data`)
on a shared filesystem, the data is then read there offline, with nothing downloaded inside a job.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from optrepro.paths import REPO_ROOT

# The datasets a run downloads; the others are generated or ship with a package (and Fashion-MNIST with Debian).
DOWNLOADED = ("cifar10", "cifar100", "fashion_mnist", "imagenet")


def configure(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="<subcommand>")
    fetch = commands.add_parser("fetch", help="download datasets into the data folder (run where there is internet)")
    fetch.add_argument("names", nargs="+", choices=DOWNLOADED, metavar="NAME", help=f"one of {', '.join(DOWNLOADED)}")
    fetch.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("OPTREPRO_DATA", REPO_ROOT / "data")),
        help="where runs will read it (default: $OPTREPRO_DATA or <repo>/data)",
    )
    fetch.set_defaults(handler=fetch_datasets)


def fetch_datasets(args: argparse.Namespace) -> int:
    from optrepro.data.imagenet_data import load_imagenet_hub
    from optrepro.data.registry import load_splits

    for name in args.names:
        if name == "imagenet":
            train, val = load_imagenet_hub(args.data_dir / "hf")
            sizes = f"{len(train)} train / {len(val)} val"
        else:
            splits = load_splits({"name": name}, args.data_dir)
            sizes = f"{len(splits.y_train)} train / {len(splits.y_test)} test"
        print(f"{name}: ready in {args.data_dir} ({sizes})")
    return 0
