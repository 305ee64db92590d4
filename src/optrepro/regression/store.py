"""The fresh run store of a regress or regression drift: `runs_regress/<code version>/`, never the committed records.

Keyed by the code version (`source_hash`: the files that decide what a run computes, uncommitted edits included),
so a killed check resumes where it stopped (runs with a finished record there are skipped) and a code change
starts a new store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from optrepro.claims import launch
from optrepro.paths import REPO_ROOT
from optrepro.records.provenance import source_hash
from optrepro.records.recipe import recipe_key
from optrepro.records.table import iter_records

REGRESS_ROOT = REPO_ROOT / "runs_regress"


def default_store() -> Path:
    return REGRESS_ROOT / source_hash()


def store_overrides(store: Path) -> tuple[str, ...]:
    """Extra overrides of every run: write into the store, CSV logging only (both outside the recipe)."""
    return (f"paths.runs_dir={Path(store).resolve()}", "logger=csv")


def finished_in(store: Path) -> dict[tuple[str | None, int | None], tuple[Path, dict[str, Any]]]:
    """(recipe key, seed) -> (record path, record) of every run with a result in the store."""
    found = {}
    for path, record in iter_records(store) if Path(store).exists() else ():
        if record.get("status") in ("finished", "diverged"):
            found.setdefault((recipe_key(record.get("recipe")), record.get("seed")), (path, record))
    return found


def execute(planned: Sequence[launch.PlannedRun], launcher: str) -> list[str]:
    """Run the planned runs with `claims run`'s launch code; returns the commands that failed."""
    build = launch.slurm_commands if launcher == "slurm" else launch.local_commands
    commands = build(planned)
    return launch.execute(commands, jobs=len(commands) if launcher == "slurm" else 1)


def measure_landscape(run_dirs: Iterable[Path], arguments: Sequence[str] = ()) -> int:
    """`python -m optrepro landscape <arguments> <run_dirs>`, in this process; returns its exit code."""
    from optrepro.cli import main

    dirs = [str(d) for d in run_dirs]
    return main(["landscape", *arguments, *dirs]) if dirs else 0
