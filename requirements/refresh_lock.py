"""Rewrite requirements/lock.txt from the environment this interpreter runs in.

The lock is the exact version of every package that `pip install -e ".[test]"` pulls in, found by walking
optrepro's requirements (with the `test` extra) through the installed packages' metadata, so tools that merely
sit in the same environment stay out. It is a pip *constraints* file: `pip install -c requirements/lock.txt
-e ".[test]"` installs these versions and nothing more. Refresh after an upgrade made on purpose:

    .venv/bin/pip install -U -e ".[test]"        # without -c: let pip pick newer versions
    .venv/bin/python requirements/refresh_lock.py
    python -m optrepro drift check               # then re-bless with `drift record` if the numbers moved
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT_PACKAGE = "optrepro"
EXTRAS = ("test",)
LOCK = Path(__file__).resolve().parent / "lock.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    """canonical name -> installed version of every package `root[extras]` needs here (root excluded)."""
    found: dict[str, str] = {}
    visited: set[tuple[str, tuple[str, ...]]] = set()
    pending = [(root, extras)]
    while pending:
        name, wanted_extras = pending.pop()
        if (canonical(name), wanted_extras) in visited:
            continue
        visited.add((canonical(name), wanted_extras))
        dist = metadata.distribution(name)
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**default_environment(), "extra": extra}) for extra in ("", *wanted_extras)
            ):
                continue
            try:
                found[canonical(requirement.name)] = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                sys.exit(
                    f"refresh_lock: {requirement.name} (needed by {name}) is not installed; "
                    f'run `pip install -e ".[test]"` in this environment first'
                )
            pending.append((requirement.name, tuple(sorted(requirement.extras))))
    found.pop(canonical(root), None)
    return found


def torch_build() -> str:
    import torch

    cuda = torch.version.cuda or "none (CPU build)"
    return f"torch {torch.__version__}, CUDA {cuda}"


def render(versions: dict[str, str]) -> str:
    header = [
        '# Exact versions of everything `pip install -e ".[test]"` installs: a pip constraints file.',
        '# Install: pip install -c requirements/lock.txt -e ".[test]"',
        f"# Made by requirements/refresh_lock.py on Python {sys.version.split()[0]}; {torch_build()}",
        "# (PyPI's default Linux torch wheel; the nvidia-* pins below are its CUDA runtime).",
    ]
    return "\n".join([*header, *(f"{name}=={version}" for name, version in sorted(versions.items())), ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=LOCK, help="default: %(default)s")
    args = parser.parse_args()
    versions = dependency_closure(ROOT_PACKAGE, EXTRAS)
    args.out.write_text(render(versions))
    print(f"{args.out}: {len(versions)} packages; {torch_build()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
